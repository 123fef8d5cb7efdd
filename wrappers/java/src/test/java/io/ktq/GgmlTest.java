package io.ktq;

import static org.junit.jupiter.api.Assertions.*;

import org.json.JSONObject;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Ktq.quantizeBlocks / dequantizeBlocks against ggml's and gguf-py's bytes (tests/golden). */
class GgmlTest {
    @ParameterizedTest
    @ValueSource(strings = {"ggml_blocks.json", "ggml_kquants.json"})
    void identicalToTheGoldenVectors(String file) throws Exception {
        JSONObject g = TestData.golden(file);
        float[] x = TestData.base64Floats(g.getString("input_f32"));
        JSONObject types = g.getJSONObject("types");
        assertFalse(types.isEmpty());
        for (String name : types.keySet()) {
            JSONObject t = types.getJSONObject(name);
            ConvertOptions.GgmlType type = ConvertOptions.GgmlType.valueOf(name);
            assertEquals(t.getInt("id"), type.id(), name);
            byte[] want = TestData.base64(t.getString("quantized"));
            assertEquals((long) x.length / type.blockSize() * type.typeSize(), want.length, name);
            byte[] got = Ktq.quantizeBlocks(type, x);
            assertEquals(want.length, got.length, name);
            for (int i = 0; i < want.length; i++)
                if (want[i] != got[i])
                    fail(name + ": byte " + i + " (block " + i / type.typeSize() + ") is " + got[i] + ", ggml's "
                            + want[i]);
            assertTrue(t.has("dequantized_f32"), name);
            float[] yWant = TestData.base64Floats(t.getString("dequantized_f32"));
            float[] y = Ktq.dequantizeBlocks(type, want, x.length);  // ggml's own blocks
            assertEquals(yWant.length, y.length, name);
            for (int i = 0; i < y.length; i++)
                if (!(y[i] == yWant[i] || (Float.isNaN(y[i]) && Float.isNaN(yWant[i]))))
                    fail(name + " value " + i + ": " + y[i] + ", expected " + yWant[i]);
        }
    }

    @Test
    void blockSizes() {
        assertEquals(32, ConvertOptions.GgmlType.Q4_0.blockSize());
        assertEquals(18, ConvertOptions.GgmlType.Q4_0.typeSize());
        assertEquals(34, ConvertOptions.GgmlType.Q8_0.typeSize());
        assertEquals(256, ConvertOptions.GgmlType.Q4_K.blockSize());
        assertEquals(144, ConvertOptions.GgmlType.Q4_K.typeSize());
        assertEquals(1, ConvertOptions.GgmlType.BF16.blockSize());
        assertEquals(2, ConvertOptions.GgmlType.BF16.typeSize());
    }

    @Test
    void partialBlocksAreRejected() throws Exception {
        KtqException e = assertThrows(KtqException.class,
                () -> Ktq.quantizeBlocks(ConvertOptions.GgmlType.Q4_0, new float[33]));
        assertEquals(KtqException.INVALID_ARGUMENT, e.status());
        assertTrue(e.getMessage().contains("Q4_0"), e.getMessage());
        assertThrows(KtqException.class, () -> Ktq.quantizeBlocks(ConvertOptions.GgmlType.Q4_K, new float[32]));
        assertThrows(KtqException.class,
                () -> Ktq.dequantizeBlocks(ConvertOptions.GgmlType.Q8_0, new byte[34], 31));
        assertThrows(KtqException.class,  // 2 blocks of values, 1 block of bytes
                () -> Ktq.dequantizeBlocks(ConvertOptions.GgmlType.Q8_0, new byte[34], 64));
        assertThrows(KtqException.class, () -> Ktq.dequantizeBlocks(ConvertOptions.GgmlType.Q8_0, new byte[34], -32));
        assertEquals(0, Ktq.quantizeBlocks(ConvertOptions.GgmlType.Q8_0, new float[0]).length);
        assertEquals(32, Ktq.dequantizeBlocks(ConvertOptions.GgmlType.Q8_0, new byte[34], 32).length);
    }

    /** Ktq.quantizeRows against ggml's importance-weighted quantizers (ggml_importance.json). */
    @Test
    void quantizeRowsMatchesGgmlsImportancePath() throws Exception {
        JSONObject g = TestData.golden("ggml_importance.json");
        float[] x = TestData.base64Floats(g.getString("input_f32"));
        float[] importance = TestData.base64Floats(g.getString("importance_f32"));
        int nPerRow = g.getInt("n_per_row"), rows = g.getInt("rows");
        assertEquals(rows * nPerRow, x.length);
        assertEquals(x.length, importance.length);
        JSONObject types = g.getJSONObject("types");
        assertFalse(types.isEmpty());
        for (String name : types.keySet()) {
            ConvertOptions.GgmlType type = ConvertOptions.GgmlType.valueOf(name);
            // Each golden row has its own importance vector: one call per row.
            java.io.ByteArrayOutputStream got = new java.io.ByteArrayOutputStream();
            for (int r = 0; r < rows; r++)
                got.writeBytes(Ktq.quantizeRows(type, java.util.Arrays.copyOfRange(x, r * nPerRow, (r + 1) * nPerRow),
                        nPerRow, java.util.Arrays.copyOfRange(importance, r * nPerRow, (r + 1) * nPerRow)));
            assertArrayEquals(TestData.base64(types.getJSONObject(name).getString("quantized")), got.toByteArray(),
                    name);
        }
        KtqException e = assertThrows(KtqException.class, () -> Ktq.quantizeRows(ConvertOptions.GgmlType.Q4_K, x,
                nPerRow, java.util.Arrays.copyOf(importance, nPerRow - 1)));
        assertEquals(KtqException.INVALID_ARGUMENT, e.status());
        // A partial last row, and rows that end mid-block (two rows of 128 are one Q4_K super-block in all,
        // but each row is quantized on its own).
        assertThrows(KtqException.class, () -> Ktq.quantizeRows(ConvertOptions.GgmlType.Q4_K,
                java.util.Arrays.copyOf(x, x.length - 1), nPerRow, java.util.Arrays.copyOf(importance, nPerRow)));
        KtqException mid = assertThrows(KtqException.class, () -> Ktq.quantizeRows(ConvertOptions.GgmlType.Q4_K,
                java.util.Arrays.copyOf(x, 256), 128, java.util.Arrays.copyOf(importance, 128)));
        assertTrue(mid.getMessage().contains("not whole Q4_K blocks"), mid.getMessage());
    }
}
