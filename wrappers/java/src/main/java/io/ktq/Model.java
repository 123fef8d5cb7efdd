package io.ktq;

import io.ktq.internal.SWIGTYPE_p_ktq_model;
import io.ktq.internal.ktqs_result;
import io.ktq.internal.ktqswig;
import java.nio.file.Path;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * An opened Hugging Face checkpoint (memory-mapped, read-only). Thread-safe:
 * several threads may read one model; close() waits for calls in flight.
 */
public final class Model implements AutoCloseable {
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private SWIGTYPE_p_ktq_model raw;
    private final Path path;

    private Model(SWIGTYPE_p_ktq_model raw, Path path) {
        this.raw = raw;
        this.path = path;
    }

    /** Where tokenizer.json is: the model folder (or the folder of the .safetensors file opened). */
    String tokenizerPath() {
        return java.nio.file.Files.isDirectory(path) ? path.toString() : path.resolveSibling("tokenizer.json").toString();
    }

    /**
     * Perplexity with ktq's native forward pass on the UTF-8 text file {@code text}: the first {@code maxTokens}
     * tokens (0 = all) as windows of {@code window} tokens (the shared protocol: 256 and 131072).
     */
    public double perplexity(Path text, int window, long maxTokens) throws KtqException {
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            double ppl = ktqswig.ktqs_perplexity(handle(), tokenizerPath(), text.toString(), window,
                    java.math.BigInteger.valueOf(maxTokens), res);
            Ktq.check(res);
            return ppl;
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    public static Model open(Path path) throws KtqException {
        return open(path, 0);
    }

    /** Opens with {@code threads} workers (0 = one per core). */
    public static Model open(Path path, int threads) throws KtqException {
        NativeLibrary.load();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_model m = ktqswig.ktqs_open_model(path.toString(), threads, res);
            Ktq.check(res);
            return new Model(m, path);
        } finally {
            res.delete();
        }
    }

    /** The native handle, for calls made while the read lock is held. */
    SWIGTYPE_p_ktq_model handle() {
        if (raw == null) throw new IllegalStateException("this ktq Model is closed");
        return raw;
    }

    ReentrantReadWriteLock.ReadLock readLock() {
        return lock.readLock();
    }

    public ModelInfo info() throws KtqException {
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_model m = handle();
            String arch = ktqswig.ktqs_model_text(m, "architecture", res);
            Ktq.check(res);
            return new ModelInfo(arch, ktqswig.ktqs_model_text(m, "model_type", res),
                    ktqswig.ktqs_model_text(m, "family", res), ktqswig.ktqs_model_text(m, "source_dtype", res),
                    ktqswig.ktqs_model_text(m, "notice", res),
                    (int) ktqswig.ktqs_model_info(m, "num_layers", res), (int) ktqswig.ktqs_model_info(m, "hidden_size", res),
                    (int) ktqswig.ktqs_model_info(m, "num_experts", res),
                    (int) ktqswig.ktqs_model_info(m, "experts_per_token", res),
                    (int) ktqswig.ktqs_model_info(m, "moe_intermediate_size", res),
                    (int) ktqswig.ktqs_model_info(m, "first_dense_layers", res),
                    (int) ktqswig.ktqs_model_info(m, "num_moe_layers", res),
                    (int) ktqswig.ktqs_model_info(m, "num_shared_experts", res),
                    ktqswig.ktqs_model_info(m, "num_tensors", res), ktqswig.ktqs_model_info(m, "total_bytes", res));
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    /** Releases the model; closing twice is harmless. */
    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (raw != null) {
                ktqswig.ktqs_model_free(raw);
                raw = null;
            }
        } finally {
            lock.writeLock().unlock();
        }
    }
}
