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

    private Model(SWIGTYPE_p_ktq_model raw) {
        this.raw = raw;
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
            return new Model(m);
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
