package io.ktq;

/** Options of {@link Ktq#convert}: threads (0 = one per core), shard size, overwrite, resume, progress interval. */
public record ConvertOptions(int threads, long maxShardBytes, boolean overwrite, boolean resume,
                             long progressIntervalMillis) {
    public static ConvertOptions defaults() {
        return new ConvertOptions(0, 0, false, false, 200);
    }

    public ConvertOptions withThreads(int t) {
        return new ConvertOptions(t, maxShardBytes, overwrite, resume, progressIntervalMillis);
    }

    public ConvertOptions withProgressIntervalMillis(long ms) {
        return new ConvertOptions(threads, maxShardBytes, overwrite, resume, ms);
    }
}
