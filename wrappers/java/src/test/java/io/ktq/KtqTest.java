package io.ktq;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KtqTest {
    static final Path DEMO = Path.of(System.getProperty("ktq.demo.model"));

    @Test
    void describesTheDemoModel() throws Exception {
        try (Model m = Model.open(DEMO)) {
            ModelInfo info = m.info();
            assertEquals("DeepseekV3ForCausalLM", info.architecture());
            assertEquals("deepseek_v3", info.family());
            assertEquals(3, info.numLayers());
            assertEquals(16, info.numExperts());
            assertEquals(4, info.expertsPerToken());
            assertEquals(1, info.firstDenseLayers());
            assertEquals(1, info.numSharedExperts());
            assertEquals("F8_E4M3", info.sourceDtype());
            assertEquals(256, info.numTensors());
        }
        assertTrue(Ktq.version().startsWith("0."));
    }

    static List<String> names(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void conversionMatchesTheCli(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("java");
        List<Progress> seen = new ArrayList<>();
        try (Model m = Model.open(DEMO)) {
            Ktq.convert(m, out, ConvertOptions.defaults().withThreads(2).withProgressIntervalMillis(1), p -> {
                seen.add(p);
                return true;
            });
        }
        assertFalse(seen.isEmpty());
        assertTrue(names(out).contains("model.safetensors"));
        String bin = System.getenv("KTQ_BIN");
        if (bin != null && !bin.isEmpty()) {
            Path cli = tmp.resolve("cli");
            Process p = new ProcessBuilder(bin, "convert", DEMO.toString(), cli.toString(), "--quiet").inheritIO().start();
            assertEquals(0, p.waitFor());
            assertEquals(names(cli), names(out));
            for (String n : names(cli))
                assertArrayEquals(Files.readAllBytes(cli.resolve(n)), Files.readAllBytes(out.resolve(n)), n);
        }
    }

    @Test
    void ktFormatMatchesTheCli(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("java-kt");
        try (Model m = Model.open(DEMO)) {
            Ktq.convert(m, out, ConvertOptions.defaults().withFormat(ConvertOptions.Format.KT_INT8).withNumaParts(2)
                    .withThreads(2), null);
        }
        assertTrue(names(out).contains("model-00001-of-00003.safetensors"));
        String bin = System.getenv("KTQ_BIN");
        if (bin != null && !bin.isEmpty()) {
            Path cli = tmp.resolve("cli-kt");
            Process p = new ProcessBuilder(bin, "convert", DEMO.toString(), cli.toString(), "--format", "kt",
                    "--quant-method", "int8", "--quiet").inheritIO().start();
            assertEquals(0, p.waitFor());
            assertEquals(names(cli), names(out));
            for (String n : names(cli))
                assertArrayEquals(Files.readAllBytes(cli.resolve(n)), Files.readAllBytes(out.resolve(n)), n);
        }
    }

    @Test
    void compressedTensorsMatchesTheCli(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("java-ct");
        try (Model m = Model.open(DEMO)) {
            Ktq.convert(m, out, ConvertOptions.defaults().withScheme(ConvertOptions.Scheme.W8A16.withMseObserver())
                    .withTargets(java.util.List.of("re:.*mlp.*")).withThreads(2), null);
        }
        String config = Files.readString(out.resolve("config.json"));
        assertTrue(config.contains("\"num_bits\": 8"), config);
        assertTrue(config.contains("\"observer\": \"memoryless_mse\""), config);
        String bin = System.getenv("KTQ_BIN");
        if (bin != null && !bin.isEmpty()) {
            Path cli = tmp.resolve("cli-ct");
            Process p = new ProcessBuilder(bin, "convert", DEMO.toString(), cli.toString(), "--to",
                    "compressed-tensors", "--scheme", "W8A16", "--target", "re:.*mlp.*", "--observer", "mse", "--quiet")
                    .inheritIO().start();
            assertEquals(0, p.waitFor());
            assertEquals(names(cli), names(out));
            for (String n : names(cli))
                assertArrayEquals(Files.readAllBytes(cli.resolve(n)), Files.readAllBytes(out.resolve(n)), n);
        }
    }

    @Test
    void ggufMatchesTheCli(@TempDir Path tmp) throws Exception {
        Path llama = Path.of("..", "..", "..", "shared", "models", "tiny-llama");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isDirectory(llama), "shared tiny-llama not found");
        Path out = tmp.resolve("java.gguf");
        try (Model m = Model.open(llama)) {
            Ktq.convert(m, out, ConvertOptions.defaults().withGgmlType(ConvertOptions.GgmlType.Q5_K), null);
        }
        String bin = System.getenv("KTQ_BIN");
        if (bin != null && !bin.isEmpty()) {
            Path cli = tmp.resolve("cli.gguf");
            Process p = new ProcessBuilder(bin, "convert", llama.toString(), cli.toString(), "--to", "gguf", "--type",
                    "Q5_K", "--quiet").inheritIO().start();
            assertEquals(0, p.waitFor());
            assertArrayEquals(Files.readAllBytes(cli), Files.readAllBytes(out));
        }
    }

    // The GGUF writer options of ktq_writer_options v5 give the CLI's bytes for the same flags.
    @Test
    void ggufExtrasMatchTheCli(@TempDir Path tmp) throws Exception {
        Path qwen = Path.of("..", "..", "..", "shared", "models", "tiny-qwen3-moe");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isDirectory(qwen), "shared tiny-qwen3-moe not found");
        Path imatrix = Path.of("..", "..", "tests", "golden", "imatrix", "tiny-qwen3-moe.imatrix.gguf").toAbsolutePath();
        Path stats = tmp.resolve("routing_stats.json");
        Files.writeString(stats, "{\"layers\": {\"1\": [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]}}");
        var cases = List.of(
                new ConvertOptions.GgufExtras(null, imatrix, null, true),
                new ConvertOptions.GgufExtras("qwen2", null, stats, false));
        var flags = List.of(List.of("--imatrix", imatrix.toString(), "--source-sha256"),
                List.of("--tokenizer-pre", "qwen2", "--routing-stats", stats.toString()));
        var keys = List.of(List.of("quantize.imatrix.file", "ktq.source.sha256"),
                List.of("qwen2", "ktq.routing.blk.1.expert_tokens"));
        try (Model m = Model.open(qwen)) {
            for (int i = 0; i < cases.size(); ++i) {
                Path out = tmp.resolve("java-" + i + ".gguf");
                Ktq.convert(m, out, ConvertOptions.defaults().withGgmlType(ConvertOptions.GgmlType.Q4_K).withThreads(2)
                        .withGgufExtras(cases.get(i)), null);
                String text = new String(Files.readAllBytes(out), java.nio.charset.StandardCharsets.ISO_8859_1);
                for (String k : keys.get(i)) assertTrue(text.contains(k), k);
                String bin = System.getenv("KTQ_BIN");
                if (bin != null && !bin.isEmpty()) {
                    Path cli = tmp.resolve("cli-" + i + ".gguf");
                    List<String> args = new ArrayList<>(List.of(bin, "convert", qwen.toString(), cli.toString(), "--to",
                            "gguf", "--type", "Q4_K", "--threads", "2", "--quiet"));
                    args.addAll(flags.get(i));
                    Process p = new ProcessBuilder(args).inheritIO().start();
                    assertEquals(0, p.waitFor());
                    assertArrayEquals(Files.readAllBytes(cli), Files.readAllBytes(out), "case " + i);
                }
            }
            KtqException e = assertThrows(KtqException.class, () -> Ktq.convert(m, tmp.resolve("bad.gguf"),
                    ConvertOptions.defaults().withGgmlType(ConvertOptions.GgmlType.Q4_K)
                            .withGgufExtras(new ConvertOptions.GgufExtras(null, tmp.resolve("none.imatrix"), null, false)),
                    null));
            assertTrue(e.getMessage().contains("none.imatrix"), e.getMessage());
        }
    }

    @Test
    void ggufWeightsReadBackOverTheCheckpoint(@TempDir Path tmp) throws Exception {
        Path llama = Path.of("..", "..", "..", "shared", "models", "tiny-llama");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isDirectory(llama), "shared tiny-llama not found");
        Path bf16 = tmp.resolve("bf16.gguf");
        try (Model m = Model.open(llama)) {
            Ktq.convert(m, bf16, ConvertOptions.defaults().withGgmlType(ConvertOptions.GgmlType.BF16), null);
            // BF16 holds the checkpoint exactly: Q/K rows must come back un-permuted.
            try (Model over = Model.open(llama, 0, null, bf16)) {
                for (String n : List.of("model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"))
                    assertArrayEquals(m.readTensor(n), over.readTensor(n), n);
            }
        }
        KtqException e = assertThrows(KtqException.class, () -> Model.open(llama, 0, null, tmp.resolve("none.gguf")));
        assertTrue(e.getMessage().contains("none.gguf"), e.getMessage());
    }

    @Test
    void ggufMixtureMatchesTheCli(@TempDir Path tmp) throws Exception {
        Path llama = Path.of("..", "..", "..", "shared", "models", "tiny-llama");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isDirectory(llama), "shared tiny-llama not found");
        Path out = tmp.resolve("java-mix.gguf");
        try (Model m = Model.open(llama)) {
            Ktq.convert(m, out, ConvertOptions.defaults().withGgufMix("Q5_K_M"), null);
            KtqException e = assertThrows(KtqException.class, () -> Ktq.convert(m, tmp.resolve("bad.gguf"),
                    ConvertOptions.defaults().withGgufMix("Q9_K_X"), null));
            assertTrue(e.getMessage().contains("Q9_K_X"), e.getMessage());
        }
        String bin = System.getenv("KTQ_BIN");
        if (bin != null && !bin.isEmpty()) {
            Path cli = tmp.resolve("cli-mix.gguf");
            Process p = new ProcessBuilder(bin, "convert", llama.toString(), cli.toString(), "--to", "gguf", "--type",
                    "Q5_K_M", "--quiet").inheritIO().start();
            assertEquals(0, p.waitFor());
            assertArrayEquals(Files.readAllBytes(cli), Files.readAllBytes(out));
        }
    }

    @Test
    void listenerReturningFalseCancelsAndLeavesNothing(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("out");
        AtomicInteger calls = new AtomicInteger();
        try (Model m = Model.open(DEMO)) {
            KtqException e = assertThrows(KtqException.class, () -> Ktq.convert(m, out, ConvertOptions.defaults(), p -> {
                calls.incrementAndGet();
                return false;
            }));
            assertEquals(KtqException.CANCELLED, e.status());
        }
        assertEquals(1, calls.get());
        assertEquals(List.of(), names(out));
    }

    @Test
    void badPathAndClosedModel() throws Exception {
        KtqException e = assertThrows(KtqException.class, () -> Model.open(Path.of("/nonexistent/ktq-model")));
        assertEquals(KtqException.NOT_FOUND, e.status());
        assertTrue(e.getMessage().contains("/nonexistent/ktq-model"), e.getMessage());
        Model m = Model.open(DEMO);
        m.close();
        m.close();
        assertThrows(IllegalStateException.class, m::info);
    }

    @Test
    void oneModelManyThreads() throws Exception {
        try (Model m = Model.open(DEMO)) {
            List<Thread> threads = new ArrayList<>();
            AtomicInteger ok = new AtomicInteger();
            for (int t = 0; t < 4; t++) {
                Thread th = new Thread(() -> {
                    for (int i = 0; i < 20; i++) {
                        try {
                            if (m.info().numExperts() == 16) ok.incrementAndGet();
                        } catch (KtqException ex) {
                            throw new RuntimeException(ex);
                        }
                    }
                });
                threads.add(th);
                th.start();
            }
            for (Thread th : threads) th.join();
            assertEquals(80, ok.get());
        }
    }

    private static Path calibText(Path tmp) throws Exception {
        Path readme = Path.of("..", "..", "README.md");
        Path p = tmp.resolve("calib.txt");
        Files.writeString(p, Files.readString(readme).repeat(4));
        return p;
    }

    @Test
    void perplexityMatchesTheCli(@TempDir Path tmp) throws Exception {
        Path text = calibText(tmp);
        double ppl;
        try (Model m = Model.open(DEMO)) {
            ppl = m.perplexity(text, 128, 512);
            KtqException e = assertThrows(KtqException.class, () -> m.perplexity(tmp.resolve("missing.txt"), 128, 0));
            assertTrue(e.getMessage().contains("missing.txt"), e.getMessage());
        }
        assertTrue(ppl > 1 && ppl < 4096, Double.toString(ppl));
        String bin = System.getenv("KTQ_BIN");
        if (bin != null && !bin.isEmpty()) {
            Process p = new ProcessBuilder(bin, "eval-ppl", DEMO.toString(), "--text", text.toString(), "--window", "128",
                    "--max-tokens", "512", "--json", "-q").start();
            String out = new String(p.getInputStream().readAllBytes());
            assertEquals(0, p.waitFor());
            java.util.regex.Matcher mm = java.util.regex.Pattern.compile("\"perplexity\": ([0-9.eE+-]+)").matcher(out);
            assertTrue(mm.find(), out);
            assertEquals(Double.parseDouble(mm.group(1)), ppl, 0.0);
        }
    }

    @Test
    void gptqMatchesTheCli(@TempDir Path tmp) throws Exception {
        Path text = calibText(tmp);
        Path out = tmp.resolve("java-gptq");
        try (Model m = Model.open(DEMO)) {
            Ktq.convertGptq(m, out, ConvertOptions.defaults().withScheme(ConvertOptions.Scheme.W4A16).withThreads(2),
                    GptqOptions.of(text).withSamples(4, 128), null);
            assertThrows(KtqException.class, () -> Ktq.convertGptq(m, tmp.resolve("bad"),
                    ConvertOptions.defaults().withScheme(ConvertOptions.Scheme.W4A16),
                    GptqOptions.of(tmp.resolve("none.txt")), null));
        }
        assertTrue(Files.exists(out.resolve("gptq_report.json")));
        String bin = System.getenv("KTQ_BIN");
        if (bin != null && !bin.isEmpty()) {
            Path cli = tmp.resolve("cli-gptq");
            Process p = new ProcessBuilder(bin, "convert", DEMO.toString(), cli.toString(), "--to", "compressed-tensors",
                    "--engine", "gptq", "--dataset", text.toString(), "--num-calibration-samples", "4",
                    "--max-sequence-length", "128", "--quiet").inheritIO().start();
            assertEquals(0, p.waitFor());
            assertEquals(names(cli), names(out));
            for (String n : names(cli))
                assertArrayEquals(Files.readAllBytes(cli.resolve(n)), Files.readAllBytes(out.resolve(n)), n);
        }
    }

    @Test
    void awqMatchesTheCli(@TempDir Path tmp) throws Exception {
        Path text = calibText(tmp);
        ConvertOptions ct = ConvertOptions.defaults().withScheme(new ConvertOptions.Scheme(4, 128, true))
                .withFormat(ConvertOptions.Format.COMPRESSED_TENSORS).withThreads(2);
        for (boolean all : new boolean[] {false, true}) {
            Path out = tmp.resolve(all ? "java-awq-all" : "java-awq");
            try (Model m = Model.open(DEMO)) {
                Ktq.convertAwq(m, out, ct, AwqOptions.of(text).withSamples(4, 128).withMoeHessianAll(all), null);
            }
            String report = Files.readString(out.resolve("awq_report.json"));
            assertEquals(!all, report.contains("routed_rows"), report);
            String bin = System.getenv("KTQ_BIN");
            if (bin != null && !bin.isEmpty()) {
                Path cli = tmp.resolve(all ? "cli-awq-all" : "cli-awq");
                Process p = new ProcessBuilder(bin, "convert", DEMO.toString(), cli.toString(), "--to",
                        "compressed-tensors", "--engine", "awq", "--dataset", text.toString(),
                        "--num-calibration-samples", "4", "--max-sequence-length", "128", "--moe-hessian",
                        all ? "all" : "blend", "--quiet").inheritIO().start();
                assertEquals(0, p.waitFor());
                assertEquals(names(cli), names(out));
                for (String n : names(cli))
                    assertArrayEquals(Files.readAllBytes(cli.resolve(n)), Files.readAllBytes(out.resolve(n)), n);
            }
        }
    }

    // The calibrated engines honour maxCpuMemory (a layer that needs more stops before anything of it is written),
    // and GPTQ runs on the ConvertOptions' device (a CUDA request fails where there is no CUDA device).
    @Test
    void calibrationMemoryLimitAndDevice(@TempDir Path tmp) throws Exception {
        Path text = calibText(tmp);
        ConvertOptions ct = ConvertOptions.defaults().withScheme(ConvertOptions.Scheme.W4A16).withThreads(2);
        try (Model m = Model.open(DEMO)) {
            Path g = tmp.resolve("gptq-small"), a = tmp.resolve("awq-small");
            KtqException ge = assertThrows(KtqException.class, () -> Ktq.convertGptq(m, g, ct,
                    GptqOptions.of(text).withSamples(4, 128).withMaxCpuMemory(1 << 20), null));
            KtqException ae = assertThrows(KtqException.class, () -> Ktq.convertAwq(m, a, ct,
                    AwqOptions.of(text).withSamples(4, 128).withMaxCpuMemory(1 << 20), null));
            for (KtqException e : new KtqException[] {ge, ae}) {
                assertEquals(KtqException.NO_MEMORY, e.status(), e.getMessage());
                assertTrue(e.getMessage().contains("limit is 1 MiB"), e.getMessage());
            }
            assertTrue(ge.getMessage().contains("GPTQ needs about"), ge.getMessage());
            assertTrue(ae.getMessage().contains("AWQ needs about"), ae.getMessage());
            // Checked before layer 0 runs: nothing of it was computed or written.
            assertTrue(ge.getMessage().contains("host memory for layer 0"), ge.getMessage());
            assertTrue(ae.getMessage().contains("host memory for layer 0"), ae.getMessage());
            assertThrows(IllegalArgumentException.class, () -> GptqOptions.of(text).withMaxCpuMemory(-1));
            if (Ktq.systemInfo().cudaDevices() == 0) {
                KtqException ce = assertThrows(KtqException.class, () -> Ktq.convertGptq(m, tmp.resolve("cuda"),
                        ct.withDevice(ConvertOptions.Device.CUDA), GptqOptions.of(text).withSamples(4, 128), null));
                assertTrue(ce.getMessage().contains("CUDA"), ce.getMessage());
            }
        }
    }
}
