package io.ktq;

/**
 * Options of {@link Ktq#convert}: output format, threads (0 = one per core), shard size, overwrite,
 * resume, progress interval, and for the kt-kernel formats the NUMA parts per expert (0 = 2) and
 * loose .kt files instead of merged safetensors.
 */
public record ConvertOptions(Format format, int threads, long maxShardBytes, boolean overwrite, boolean resume,
                             long progressIntervalMillis, int numaParts, boolean looseFiles) {
    /** Output formats (values of the C API's ktq_format). */
    public enum Format {
        /** Hugging Face checkpoint, every floating tensor BF16. */
        BF16(1),
        /** kt-kernel's AMX INT4 expert layout (convert_cpu_weights.py --quant-method int4). */
        KT_INT4(2),
        /** kt-kernel's AMX INT8 expert layout. */
        KT_INT8(3);

        final int code;

        Format(int code) {
            this.code = code;
        }
    }

    public static ConvertOptions defaults() {
        return new ConvertOptions(Format.BF16, 0, 0, false, false, 200, 0, false);
    }

    public ConvertOptions withFormat(Format f) {
        return new ConvertOptions(f, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                looseFiles);
    }

    public ConvertOptions withThreads(int t) {
        return new ConvertOptions(format, t, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                looseFiles);
    }

    public ConvertOptions withProgressIntervalMillis(long ms) {
        return new ConvertOptions(format, threads, maxShardBytes, overwrite, resume, ms, numaParts, looseFiles);
    }

    public ConvertOptions withNumaParts(int parts) {
        return new ConvertOptions(format, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, parts,
                looseFiles);
    }

    public ConvertOptions withLooseFiles(boolean loose) {
        return new ConvertOptions(format, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                loose);
    }
}
