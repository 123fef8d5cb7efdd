package io.ktq;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.json.JSONObject;
import org.junit.jupiter.api.Test;

/** Model.tensors / tensor / readTensor / expertShape / readExpert against the safetensors file decoded here. */
class TensorTest {
    static final String GATE_0_0 = "model.layers.0.mlp.experts.0.gate_proj.weight";

    static void assertSameFloats(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what + ": length");
        for (int i = 0; i < want.length; i++)
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i]))
                fail(what + " element " + i + ": " + got[i] + ", expected " + want[i]);
    }

    @Test
    void listsEveryStoredTensor() throws Exception {
        Path dir = TestData.sharedModel("tiny-qwen3-moe");
        Path file = dir.resolve("model.safetensors");
        JSONObject header = TestData.safetensorsHeader(file);
        Map<String, JSONObject> stored = new TreeMap<>();
        for (String k : header.keySet())
            if (!k.equals("__metadata__")) stored.put(k, header.getJSONObject(k));
        Pattern layerOf = Pattern.compile("^model\\.layers\\.(\\d+)\\.");
        try (Model m = Model.open(dir)) {
            List<TensorInfo> tensors = m.tensors();
            assertEquals(m.info().numTensors(), tensors.size());
            assertEquals(stored.size(), tensors.size());
            assertEquals(List.copyOf(stored.keySet()), tensors.stream().map(TensorInfo::name).toList());
            for (TensorInfo t : tensors) {
                JSONObject e = stored.get(t.name());
                assertEquals("model.safetensors", t.file(), t.name());
                assertEquals(e.getString("dtype"), t.dtype(), t.name());
                assertArrayEquals(TestData.shape(e), t.shape(), t.name());
                long bytes = e.getJSONArray("data_offsets").getLong(1) - e.getJSONArray("data_offsets").getLong(0);
                assertEquals(bytes, t.nbytes(), t.name());
                assertEquals(bytes / 2, t.numel(), t.name());
                Matcher mm = layerOf.matcher(t.name());
                assertEquals(mm.find() ? Integer.parseInt(mm.group(1)) : -1, t.layer(), t.name());
                assertEquals(t, m.tensor(t.name()));
            }
            assertTrue(tensors.stream().anyMatch(t -> t.name().equals(GATE_0_0)));
            long[] shape = tensors.get(0).shape();
            shape[0] = -7;  // a copy: the TensorInfo is unchanged
            assertNotEquals(-7, tensors.get(0).shape()[0]);
        }
    }

    @Test
    void readTensorMatchesTheFileExactly() throws Exception {
        Path dir = TestData.sharedModel("tiny-qwen3-moe");
        Path file = dir.resolve("model.safetensors");
        try (Model m = Model.open(dir)) {
            for (String name : List.of("model.layers.0.self_attn.k_proj.weight", "model.norm.weight",
                    "model.embed_tokens.weight")) {
                TestData.Stored s = TestData.readSafetensors(file, name);
                assertArrayEquals(s.shape(), m.tensor(name).shape(), name);
                assertSameFloats(s.bf16(), m.readTensor(name), name);
            }
        }
    }

    @Test
    void readExpertMatchesTheFileExactly() throws Exception {
        Path dir = TestData.sharedModel("tiny-qwen3-moe");
        Path file = dir.resolve("model.safetensors");
        try (Model m = Model.open(dir)) {
            TestData.Stored gate = TestData.readSafetensors(file, GATE_0_0);
            assertArrayEquals(gate.shape(), m.expertShape(0, 0, Proj.GATE));
            assertSameFloats(gate.bf16(), m.readExpert(0, 0, Proj.GATE), GATE_0_0);
            String down = "model.layers.2.mlp.experts.5.down_proj.weight";
            TestData.Stored d = TestData.readSafetensors(file, down);
            assertArrayEquals(d.shape(), m.expertShape(2, 5, Proj.DOWN));
            assertSameFloats(d.bf16(), m.readExpert(2, 5, Proj.DOWN), down);
            assertThrows(KtqException.class, () -> m.readExpert(0, 999, Proj.UP));
            assertThrows(KtqException.class, () -> m.expertShape(99, 0, Proj.UP));
        }
    }

    @Test
    void unknownTensorIsNamedAndClosedModelFailsCleanly() throws Exception {
        Path dir = TestData.sharedModel("tiny-qwen3-moe");
        Model m = Model.open(dir);
        String name = "model.layers.0.no_such.weight";
        KtqException e = assertThrows(KtqException.class, () -> m.readTensor(name));
        assertTrue(e.getMessage().contains(name), e.getMessage());
        assertEquals(KtqException.NOT_FOUND, e.status());
        e = assertThrows(KtqException.class, () -> m.tensor(name));
        assertTrue(e.getMessage().contains(name), e.getMessage());
        m.close();
        m.close();
        assertThrows(IllegalStateException.class, m::tensors);
        assertThrows(IllegalStateException.class, () -> m.readTensor(GATE_0_0));
        assertThrows(IllegalStateException.class, () -> m.readExpert(0, 0, Proj.GATE));
    }
}
