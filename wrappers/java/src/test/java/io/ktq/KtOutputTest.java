package io.ktq;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** KtOutput and Ktq.mergeKt on outputs the CLI writes. */
class KtOutputTest {
    /** ktq convert MODEL OUT --format kt --quant-method int8 [extra...], by the CLI ($KTQ_BIN). */
    static void convertKt(Path model, Path out, String... extra) throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(TestData.cli() != null, "KTQ_BIN not set");
        List<String> args = new ArrayList<>(List.of("convert", model.toString(), out.toString(), "--format", "kt",
                "--quant-method", "int8", "--quiet"));
        args.addAll(List.of(extra));
        TestData.runCli(args.toArray(String[]::new));
    }

    static KtPart find(List<KtPart> parts, int layer, int expert, Proj proj, int part) {
        return parts.stream().filter(p -> p.layer() == layer && p.expert() == expert && p.proj() == proj
                && p.part() == part).findFirst().orElseThrow(() -> new AssertionError(
                        "no part " + layer + "/" + expert + "/" + proj + "/" + part));
    }

    @Test
    void mergedInt8IsWithinHalfAStepOfTheModel(@TempDir Path tmp) throws Exception {
        Path dir = TestData.sharedModel("tiny-qwen3-moe");
        Path out = tmp.resolve("kt1");
        // The CLI's default --threadpool-count is 2 NUMA parts: ask for 1.
        convertKt(dir, out, "--threadpool-count", "1");
        try (Model m = Model.open(dir); KtOutput kt = KtOutput.open(out)) {
            ModelInfo info = m.info();
            assertTrue(kt.isMerged());
            int expected = info.numMoeLayers() * info.numExperts() * 3;
            assertEquals(3 * 16 * 3, expected);
            assertEquals(expected, kt.partCount());
            List<KtPart> parts = kt.parts();
            assertEquals(expected, parts.size());
            Set<String> seen = new HashSet<>();
            for (int i = 0; i < parts.size(); i++) {
                KtPart p = parts.get(i);
                assertEquals(i, p.index());
                assertEquals(8, p.bits(), p.name());
                assertEquals(0, p.part(), p.name());
                assertTrue(seen.add(p.layer() + "/" + p.expert() + "/" + p.proj()), p.name());
                assertArrayEquals(m.expertShape(p.layer(), p.expert(), p.proj()), new long[] {p.rows(), p.cols()},
                        p.name());
                assertEquals(p, kt.part(i));
            }

            KtPart gate = find(parts, 0, 0, Proj.GATE, 0);
            float[] w = m.readExpert(0, 0, Proj.GATE);
            KtPartData data = kt.read(gate.index());
            float[] dq = kt.dequantize(gate.index());
            assertEquals(gate.packedBytes(), data.packed().length);
            assertEquals(gate.rows(), data.scales().length);
            assertEquals(w.length, dq.length);
            int cols = (int) gate.cols();
            for (int r = 0; r < gate.rows(); r++) {
                float scale = data.scales()[r];
                assertTrue(scale > 0, "row " + r + " scale " + scale);
                for (int c = 0; c < cols; c++) {
                    int i = r * cols + c;
                    // dq is code x scale rounded to float32 (up to half an ulp of dq away, more than 1e-6 of a
                    // half step for codes near 127): the half-step bound is checked on code x scale itself. The
                    // quantizer (kt-kernel's arithmetic) rounds w / scale computed in float32, whose error is up to
                    // |code| x 2^-24 steps: a true quotient of 63.4999989 becomes 63.5 and rounds to 64.
                    double code = Math.rint(dq[i] / (double) scale);
                    assertTrue(Math.abs(code) <= 128, "row " + r + " col " + c + ": code " + code);
                    assertTrue(Math.abs(dq[i] - code * scale) <= Math.ulp(dq[i]) / 2,
                            "row " + r + " col " + c + ": " + dq[i] + " is not a code times " + scale);
                    assertTrue(Math.abs(w[i] - code * scale) <= scale * (0.5 + 128 * 0x1p-24),
                            "row " + r + " col " + c + ": " + w[i] + " vs " + dq[i] + ", scale " + scale);
                }
            }
            assertThrows(KtqException.class, () -> kt.read(parts.size()));
            assertThrows(KtqException.class, () -> kt.dequantize(-1));

            kt.close();
            kt.close();
            assertThrows(IllegalStateException.class, kt::parts);
            assertThrows(IllegalStateException.class, () -> kt.dequantize(0));
        }
    }

    @Test
    void mergingLooseFilesGivesTheCliMergedOutput(@TempDir Path tmp) throws Exception {
        Path dir = TestData.sharedModel("tiny-qwen3-moe");
        Path merged = tmp.resolve("cli-merged"), loose = tmp.resolve("cli-loose"), out3 = tmp.resolve("java-merged");
        convertKt(dir, merged);
        convertKt(dir, loose, "--no-merge-safetensor");
        try (Model m = Model.open(dir)) {
            int expected = m.info().numMoeLayers() * m.info().numExperts() * 3 * 2;  // 2 NUMA parts (the default)
            try (KtOutput l = KtOutput.open(loose); KtOutput g = KtOutput.open(merged)) {
                assertFalse(l.isMerged());
                assertTrue(g.isMerged());
                assertEquals(expected, l.partCount());
                assertEquals(g.parts(), l.parts());
                for (int i : new int[] {0, 1, expected / 2, expected - 1}) {
                    assertArrayEquals(g.dequantize(i), l.dequantize(i), "part " + i);
                    KtPartData a = g.read(i), b = l.read(i);
                    assertArrayEquals(a.packed(), b.packed(), "part " + i);
                    assertArrayEquals(a.scales(), b.scales(), "part " + i);
                }
            }
            Ktq.mergeKt(out3, loose, m, false);
            KtqException e = assertThrows(KtqException.class, () -> Ktq.mergeKt(out3, loose, m, false));
            assertTrue(e.getMessage().contains("java-merged"), e.getMessage());
            Ktq.mergeKt(out3, loose, m, true);
        }
        // A conversion also leaves its resume journal (.ktq-journal.json, marked complete); a merge writes none.
        List<String> names = TestData.names(merged).stream().filter(n -> !n.equals(".ktq-journal.json")).toList();
        assertTrue(names.stream().anyMatch(n -> n.endsWith(".safetensors")), names.toString());
        assertEquals(names, TestData.names(out3));
        for (String n : names)
            assertArrayEquals(Files.readAllBytes(merged.resolve(n)), Files.readAllBytes(out3.resolve(n)), n);
        try (KtOutput o = KtOutput.open(out3)) {
            assertTrue(o.isMerged());
        }
    }

    @Test
    void badPathsAreNamed() {
        Path nowhere = Path.of("/nonexistent/ktq-kt-output");
        KtqException e = assertThrows(KtqException.class, () -> KtOutput.open(nowhere));
        assertTrue(e.getMessage().contains(nowhere.toString()), e.getMessage());
        e = assertThrows(KtqException.class, () -> Tokenizer.open(Path.of("/nonexistent/ktq-tokenizer")));
        assertTrue(e.getMessage().contains("/nonexistent/ktq-tokenizer"), e.getMessage());
    }
}
