package io.ktq;

import static org.junit.jupiter.api.Assertions.*;

import io.ktq.internal.ktqs_result;
import io.ktq.internal.ktqswig;
import java.math.BigInteger;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Gptq on a synthetic Linear: sizes, codes, and a lower reconstruction error than round-to-nearest. */
class GptqTest {
    static final int N = 256, IN = 64, OUT = 32, GROUP = 32;

    /** Correlated activations x [N, IN] (z A with a random mixing A and uneven channel scales), fixed seed. */
    static float[] activations(Random rnd) {
        double[][] a = new double[IN][IN];
        for (int k = 0; k < IN; k++)
            for (int j = 0; j < IN; j++) a[k][j] = rnd.nextGaussian() * 0.3 + (k == j ? 1 : 0);
        float[] x = new float[N * IN];
        for (int n = 0; n < N; n++) {
            double[] z = new double[IN];
            for (int k = 0; k < IN; k++) z[k] = rnd.nextGaussian();
            for (int j = 0; j < IN; j++) {
                double v = 0;
                for (int k = 0; k < IN; k++) v += z[k] * a[k][j];
                x[n * IN + j] = (float) (v * (1 + j % 5));
            }
        }
        return x;
    }

    /** sum over samples and outputs of (x (W - Wq)^T)^2, in double. */
    static double reconstructionError(float[] x, float[] w, float[] wq) {
        double err = 0;
        for (int n = 0; n < N; n++)
            for (int r = 0; r < OUT; r++) {
                double d = 0;
                for (int c = 0; c < IN; c++) d += x[n * IN + c] * ((double) w[r * IN + c] - wq[r * IN + c]);
                err += d * d;
            }
        return err;
    }

    /** Plain symmetric 4-bit round-to-nearest: scale absmax / 7 per group, codes clamped to [-8, 7]. */
    static float[] roundToNearest(float[] w) {
        float[] q = new float[w.length];
        for (int r = 0; r < OUT; r++)
            for (int g = 0; g < IN / GROUP; g++) {
                double absmax = 0;
                for (int c = g * GROUP; c < (g + 1) * GROUP; c++) absmax = Math.max(absmax, Math.abs(w[r * IN + c]));
                double s = absmax / 7;
                for (int c = g * GROUP; c < (g + 1) * GROUP; c++) {
                    double code = s == 0 ? 0 : Math.max(-8, Math.min(7, Math.rint(w[r * IN + c] / s)));
                    q[r * IN + c] = (float) (code * s);
                }
            }
        return q;
    }

    static long ctSize(int rows, int cols, int bits, int group, boolean symmetric, int which) throws KtqException {
        ktqs_result res = new ktqs_result();
        try {
            long n = ktqswig.ktqs_ct_size(BigInteger.valueOf(rows), BigInteger.valueOf(cols), bits, group,
                    symmetric ? 1 : 0, which, res);
            Ktq.check(res);
            return n;
        } finally {
            res.delete();
        }
    }

    @Test
    void beatsRoundToNearestWithValidCodes() throws Exception {
        Random rnd = new Random(20261125);
        float[] x = activations(rnd);
        float[] w = new float[OUT * IN];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * 0.02);
        GptqQuantizeOptions opts = GptqQuantizeOptions.defaults().withGroupSize(GROUP);
        assertEquals(4, opts.bits());
        GptqResult r;
        try (Gptq g = new Gptq(IN)) {
            assertEquals(0, g.rows());
            g.addBatch(Arrays.copyOfRange(x, 0, N / 2 * IN));
            g.addBatch(Arrays.copyOfRange(x, N / 2 * IN, N * IN));
            assertEquals(N, g.rows());
            r = g.quantize(w, opts);
        }
        assertEquals(ctSize(OUT, IN, 4, GROUP, true, 0), r.packed().length);
        assertEquals(ctSize(OUT, IN, 4, GROUP, true, 1), r.scales().length);
        assertEquals(ctSize(OUT, IN, 4, GROUP, true, 2), r.zeroPoints().length);
        assertEquals(OUT * IN * 4 / 32, r.packed().length);  // docs/formats/compressed-tensors.md
        assertEquals(OUT * IN / GROUP, r.scales().length);
        assertEquals(0, r.zeroPoints().length);
        assertEquals(OUT * IN, r.dequantized().length);
        assertFalse(r.rtnFallback());
        assertTrue(Double.isFinite(r.loss()) && r.loss() >= 0, Double.toString(r.loss()));

        int groups = IN / GROUP, words = IN * 4 / 32;
        for (int row = 0; row < OUT; row++)
            for (int c = 0; c < IN; c++) {
                float s = r.scales()[row * groups + c / GROUP];
                assertTrue(s > 0, "scale of row " + row + " col " + c);
                double q = r.dequantized()[row * IN + c] / (double) s;
                double code = Math.rint(q);
                assertEquals(code, q, 1e-4, "row " + row + " col " + c + " is not a whole number of steps");
                assertTrue(code >= -8 && code <= 7, "row " + row + " col " + c + ": code " + code);
                // weight_packed: code + 8, 4 bits each, LSB first along the row.
                int nibble = (r.packed()[row * words + c / 8] >>> (4 * (c % 8))) & 0xF;
                assertEquals(code, nibble - 8, "packed code of row " + row + " col " + c);
            }

        double gptq = reconstructionError(x, w, r.dequantized());
        double rtn = reconstructionError(x, w, roundToNearest(w));
        assertTrue(gptq <= rtn, "GPTQ error " + gptq + " > round-to-nearest " + rtn);
    }

    @Test
    void bf16AndAsymmetricSchemes() throws Exception {
        Random rnd = new Random(7);
        float[] x = activations(rnd);
        float[] w = new float[OUT * IN];
        for (int i = 0; i < w.length; i++)  // BF16 values: the low 16 bits of each float zero
            w[i] = Float.intBitsToFloat(Float.floatToRawIntBits((float) (rnd.nextGaussian() * 0.02)) & 0xFFFF0000);
        try (Gptq g = new Gptq(IN)) {
            g.addBatch(x);
            GptqResult r = g.quantize(w, GptqQuantizeOptions.defaults().withGroupSize(GROUP).withBf16(true));
            for (float s : r.scales()) assertEquals(0, Float.floatToRawIntBits(s) & 0xFFFF, "scale " + s);
            float[] notBf16 = w.clone();
            notBf16[5] = Math.nextUp(notBf16[5]);
            KtqException e = assertThrows(KtqException.class,
                    () -> g.quantize(notBf16, GptqQuantizeOptions.defaults().withGroupSize(GROUP).withBf16(true)));
            assertEquals(KtqException.INVALID_ARGUMENT, e.status());

            GptqResult a = g.quantize(w, GptqQuantizeOptions.defaults().withGroupSize(GROUP).withSymmetric(false)
                    .withNaturalOrder(true).withDampeningFrac(0.1));
            assertEquals(ctSize(OUT, IN, 4, GROUP, false, 2), a.zeroPoints().length);
            assertTrue(a.zeroPoints().length > 0);
            assertEquals(ctSize(OUT, IN, 4, GROUP, false, 0), a.packed().length);
        }
    }

    @Test
    void wrongLengthsAndCloseFailCleanly() throws Exception {
        Gptq g = new Gptq(IN);
        KtqException e = assertThrows(KtqException.class, () -> g.addBatch(new float[IN + 1]));
        assertEquals(KtqException.INVALID_ARGUMENT, e.status());
        g.addBatch(activations(new Random(1)));
        e = assertThrows(KtqException.class,
                () -> g.quantize(new float[OUT * IN + 3], GptqQuantizeOptions.defaults().withGroupSize(GROUP)));
        assertEquals(KtqException.INVALID_ARGUMENT, e.status());
        assertThrows(KtqException.class, () -> g.quantize(new float[0], GptqQuantizeOptions.defaults()));
        // 64 columns are not a whole number of groups of 128 (the default).
        assertThrows(KtqException.class, () -> g.quantize(new float[OUT * IN], GptqQuantizeOptions.defaults()));
        assertThrows(IllegalArgumentException.class, () -> new Gptq(0));
        g.close();
        g.close();
        assertThrows(IllegalStateException.class, () -> g.addBatch(new float[IN]));
        assertThrows(IllegalStateException.class, g::rows);
        assertThrows(IllegalStateException.class,
                () -> g.quantize(new float[OUT * IN], GptqQuantizeOptions.defaults().withGroupSize(GROUP)));
    }
}
