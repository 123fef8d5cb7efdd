package io.ktq;

import io.ktq.internal.SWIGTYPE_p_ktq_tokenizer;
import io.ktq.internal.ktqs_result;
import io.ktq.internal.ktqswig;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A checkpoint's tokenizer (byte-level BPE from its tokenizer.json), encoding as Hugging Face
 * {@code tokenizers} does: the token ids ktq's calibration and perplexity see. A tokenizer.json that uses
 * anything ktq does not implement fails to open (UNSUPPORTED, naming the field) rather than encode differently.
 * Thread-safe: any number of threads may encode with one tokenizer; close() waits for calls in flight, and a
 * call after close() throws IllegalStateException.
 */
public final class Tokenizer implements AutoCloseable {
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private SWIGTYPE_p_ktq_tokenizer raw;

    private Tokenizer(SWIGTYPE_p_ktq_tokenizer raw) {
        this.raw = raw;
    }

    /** Loads {@code path}: a tokenizer.json file, or a model folder that holds one. */
    public static Tokenizer open(Path path) throws KtqException {
        Objects.requireNonNull(path, "path");
        NativeLibrary.load();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_tokenizer t = ktqswig.ktqs_tokenizer_open(path.toString(), res);
            Ktq.check(res);
            return new Tokenizer(t);
        } finally {
            res.delete();
        }
    }

    private SWIGTYPE_p_ktq_tokenizer handle() {
        if (raw == null) throw new IllegalStateException("this ktq Tokenizer is closed");
        return raw;
    }

    /** The number of token ids (the largest id + 1). */
    public int vocabSize() {
        lock.readLock().lock();
        try {
            return (int) ktqswig.ktqs_tokenizer_vocab_size(handle());
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * The token ids of {@code text} (encoded as UTF-8; an unpaired surrogate becomes '?'), with the
     * post-processor's special tokens if the tokenizer adds any.
     */
    public int[] encode(String text) throws KtqException {
        byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_tokenizer t = handle();
            // Byte-level BPE gives at most one id per byte, plus the few a template adds: one call almost
            // always suffices; when not, the first call says how many ids there are.
            int[] ids = new int[(int) Math.min(Model.MAX_ARRAY, utf8.length + 16L)];
            long count = ktqswig.ktqs_tokenizer_encode(t, utf8, ids, res);
            if (res.getStatus() == KtqException.BUFFER_TOO_SMALL) {
                ids = new int[Model.arrayLength(count, "token ids")];
                count = ktqswig.ktqs_tokenizer_encode(t, utf8, ids, res);
            }
            Ktq.check(res);
            return count == ids.length ? ids : Arrays.copyOf(ids, (int) count);
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    /** Releases the tokenizer; closing twice is harmless. */
    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (raw != null) {
                ktqswig.ktqs_tokenizer_free(raw);
                raw = null;
            }
        } finally {
            lock.writeLock().unlock();
        }
    }
}
