package io.ktq;

import io.ktq.internal.SWIGTYPE_p_ktqs_gptq;
import io.ktq.internal.ktqs_result;
import io.ktq.internal.ktqswig;
import java.math.BigInteger;
import java.util.Objects;

/**
 * GPTQ for one Linear layer of a pipeline that runs its own forward pass: feed the layer's inputs with
 * {@link #addBatch}, then {@link #quantize} its weight into compressed-tensors arrays. The algorithm is
 * llm-compressor's (min-max scales from the original weights, then columns quantized in blocks with the rounding
 * errors spread through the damped inverse Hessian H = 2 / N * sum(x x^T)). Whole checkpoints are quantized with
 * {@link Ktq#convertGptq} instead. Thread-safe: calls on one object are serialized; close() waits for a call in
 * flight, and a call after close() throws IllegalStateException.
 */
public final class Gptq implements AutoCloseable {
    private SWIGTYPE_p_ktqs_gptq raw;
    private final int inFeatures;

    /** A Hessian accumulator for a Linear with {@code inFeatures} inputs (at least 1). */
    public Gptq(int inFeatures) throws KtqException {
        if (inFeatures < 1) throw new IllegalArgumentException("inFeatures must be at least 1, not " + inFeatures);
        NativeLibrary.load();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktqs_gptq g = ktqswig.ktqs_gptq_new(BigInteger.valueOf(inFeatures), res);
            Ktq.check(res);
            this.raw = g;
            this.inFeatures = inFeatures;
        } finally {
            res.delete();
        }
    }

    /** The layer's input features (the length of one input row and of one weight row). */
    public int inFeatures() {
        return inFeatures;
    }

    private SWIGTYPE_p_ktqs_gptq handle() {
        if (raw == null) throw new IllegalStateException("this ktq Gptq is closed");
        return raw;
    }

    /** Adds input rows {@code x} ([rows, inFeatures] float32, row-major; a whole number of rows) to the Hessian. */
    public synchronized void addBatch(float[] x) throws KtqException {
        Objects.requireNonNull(x, "x");
        SWIGTYPE_p_ktqs_gptq g = handle();
        ktqs_result res = new ktqs_result();
        try {
            ktqswig.ktqs_gptq_add_batch(g, x, res);
            Ktq.check(res);
        } finally {
            res.delete();
        }
    }

    /** The number of input rows added so far. */
    public synchronized long rows() throws KtqException {
        SWIGTYPE_p_ktqs_gptq g = handle();
        ktqs_result res = new ktqs_result();
        try {
            long n = ktqswig.ktqs_gptq_rows_seen(g, res).longValue();
            Ktq.check(res);
            return n;
        } finally {
            res.delete();
        }
    }

    /**
     * Quantizes {@code weights} ([rows, inFeatures] float32, row-major) with the Hessian accumulated so far.
     * With no batch added every column is "dead" and quantized as zero, as llm-compressor does: add data first.
     */
    public synchronized GptqResult quantize(float[] weights, GptqQuantizeOptions options) throws KtqException {
        Objects.requireNonNull(weights, "weights");
        Objects.requireNonNull(options, "options");
        SWIGTYPE_p_ktqs_gptq g = handle();
        if (weights.length == 0 || weights.length % inFeatures != 0)
            throw new KtqException(KtqException.INVALID_ARGUMENT,
                    weights.length + " weights are not a whole number of rows of " + inFeatures);
        long rows = weights.length / inFeatures;
        ktqs_result res = new ktqs_result();
        try {
            int[] packed = new int[ctSize(rows, options, 0, res)];
            float[] scales = new float[ctSize(rows, options, 1, res)];
            int zeros = ctSize(rows, options, 2, res);
            int[] zeroPoints = new int[zeros];
            float[] dequantized = new float[weights.length];
            int[] fallback = new int[1];
            double loss = ktqswig.ktqs_gptq_quantize(g, weights, options.bits(), options.groupSize(),
                    options.symmetric() ? 1 : 0, options.bf16() ? 1 : 0, options.dampeningFrac(),
                    options.naturalOrder() ? 1 : 0, options.device().code, options.cudaDevice(), packed, scales,
                    zeros == 0 ? null : zeroPoints, dequantized, fallback, res);
            Ktq.check(res);
            return new GptqResult(packed, scales, zeroPoints, dequantized, loss, fallback[0] != 0);
        } finally {
            res.delete();
        }
    }

    private int ctSize(long rows, GptqQuantizeOptions o, int which, ktqs_result res) throws KtqException {
        long n = ktqswig.ktqs_ct_size(BigInteger.valueOf(rows), BigInteger.valueOf(inFeatures), o.bits(),
                o.groupSize(), o.symmetric() ? 1 : 0, which, res);
        Ktq.check(res);
        return Model.arrayLength(n, "compressed-tensors array");
    }

    /** Releases the accumulator; closing twice is harmless. */
    @Override
    public synchronized void close() {
        if (raw != null) {
            ktqswig.ktqs_gptq_free(raw);
            raw = null;
        }
    }
}
