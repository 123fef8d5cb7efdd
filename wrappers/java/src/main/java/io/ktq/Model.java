package io.ktq;

import io.ktq.internal.SWIGTYPE_p_ktq_model;
import io.ktq.internal.ktqs_result;
import io.ktq.internal.ktqswig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
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
        return open(path, threads, null, null);
    }

    /**
     * Opens with {@code threads} workers (0 = one per core) and, when not null, the weights of a conversion of
     * this checkpoint read in place of its own, dequantized: the routed experts of a kt-kernel output folder
     * ({@code ktExperts}) and every weight of a GGUF file ({@code ggufWeights}, llama's Q/K permutation undone);
     * {@link #perplexity} then scores what kt-kernel or llama.cpp compute with.
     */
    public static Model open(Path path, int threads, Path ktExperts, Path ggufWeights) throws KtqException {
        NativeLibrary.load();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_model m = ktqswig.ktqs_open_model(path.toString(), threads,
                    ktExperts == null ? "" : ktExperts.toString(), ggufWeights == null ? "" : ggufWeights.toString(),
                    res);
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

    /** The largest array a JVM allocates (a little under Integer.MAX_VALUE). */
    static final long MAX_ARRAY = Integer.MAX_VALUE - 8;

    /** Every stored tensor, in name order (the order of the merged index, whatever the shard layout). */
    public List<TensorInfo> tensors() throws KtqException {
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_model m = handle();
            long n = ktqswig.ktqs_tensor_count(m);
            List<TensorInfo> out = new ArrayList<>((int) Math.min(n, MAX_ARRAY));
            for (long i = 0; i < n; i++) out.add(tensorAt(m, i, res));
            return Collections.unmodifiableList(out);
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    /** The description of tensor {@code name}; a KtqException (NOT_FOUND, naming it) when there is none. */
    public TensorInfo tensor(String name) throws KtqException {
        Objects.requireNonNull(name, "name");
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_model m = handle();
            long index = ktqswig.ktqs_find_tensor(m, name, res);
            Ktq.check(res);
            return tensorAt(m, index, res);
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    private static TensorInfo tensorAt(SWIGTYPE_p_ktq_model m, long index, ktqs_result res) throws KtqException {
        String name = ktqswig.ktqs_tensor_text(m, index, "name", res);
        Ktq.check(res);
        String file = ktqswig.ktqs_tensor_text(m, index, "file", res);
        Ktq.check(res);
        String dtype = ktqswig.ktqs_tensor_text(m, index, "dtype", res);
        Ktq.check(res);
        int ndim = (int) ktqswig.ktqs_tensor_num(m, index, "ndim", res);
        Ktq.check(res);
        long[] shape = new long[ndim];
        for (int d = 0; d < ndim; d++) {
            shape[d] = ktqswig.ktqs_tensor_num(m, index, "dim" + d, res);
            Ktq.check(res);
        }
        long nbytes = ktqswig.ktqs_tensor_num(m, index, "nbytes", res);
        Ktq.check(res);
        int layer = (int) ktqswig.ktqs_tensor_num(m, index, "layer", res);
        Ktq.check(res);
        return new TensorInfo(name, file, dtype, shape, nbytes, layer);
    }

    /**
     * Tensor {@code name} as float32, row-major (FP8 weights dequantized with their block scales); a
     * KtqException naming it when there is none, or when it has more elements than a Java array holds.
     */
    public float[] readTensor(String name) throws KtqException {
        Objects.requireNonNull(name, "name");
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_model m = handle();
            long index = ktqswig.ktqs_find_tensor(m, name, res);
            Ktq.check(res);
            long numel = ktqswig.ktqs_tensor_num(m, index, "numel", res);
            Ktq.check(res);
            float[] out = new float[arrayLength(numel, name)];
            ktqswig.ktqs_read_tensor_f32(m, name, out, res);
            Ktq.check(res);
            return out;
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    /**
     * The shape {rows, cols} (rows = output features) of routed expert {@code expert}'s {@code proj} matrix in
     * decoder layer {@code layer}, whether the checkpoint stores experts one by one or fused.
     */
    public long[] expertShape(int layer, int expert, Proj proj) throws KtqException {
        Objects.requireNonNull(proj, "proj");
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            return expertShape(handle(), layer, expert, proj, res);
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    private static long[] expertShape(SWIGTYPE_p_ktq_model m, int layer, int expert, Proj proj, ktqs_result res)
            throws KtqException {
        long rows = ktqswig.ktqs_expert_dim(m, layer, expert, proj.code(), 0, res);
        Ktq.check(res);
        long cols = ktqswig.ktqs_expert_dim(m, layer, expert, proj.code(), 1, res);
        Ktq.check(res);
        return new long[] {rows, cols};
    }

    /** Routed expert {@code expert}'s {@code proj} matrix of decoder layer {@code layer} as float32, row-major. */
    public float[] readExpert(int layer, int expert, Proj proj) throws KtqException {
        Objects.requireNonNull(proj, "proj");
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_model m = handle();
            long[] shape = expertShape(m, layer, expert, proj, res);
            float[] out = new float[arrayLength(shape[0] * shape[1],
                    "layer " + layer + " expert " + expert + " " + proj)];
            ktqswig.ktqs_read_expert_f32(m, layer, expert, proj.code(), out, res);
            Ktq.check(res);
            return out;
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    /** {@code n} as an array length, or a KtqException when a Java array cannot hold that many. */
    static int arrayLength(long n, String what) throws KtqException {
        if (n < 0 || n > MAX_ARRAY)
            throw new KtqException(KtqException.INVALID_ARGUMENT,
                    what + ": " + n + " elements do not fit in a Java array");
        return (int) n;
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
