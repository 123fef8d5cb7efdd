package io.ktq;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.jupiter.api.Assumptions;

/** Shared fixtures of the tests: the shared models, the golden vectors, the CLI, a safetensors reader. */
final class TestData {
    private TestData() {}

    /** A model of /work/shared/models (relative to wrappers/java); skips the test when it is absent. */
    static Path sharedModel(String name) {
        Path p = Path.of("..", "..", "..", "shared", "models", name);
        Assumptions.assumeTrue(Files.isDirectory(p), "shared " + name + " not found");
        return p;
    }

    /** A file of tests/golden (relative to wrappers/java). */
    static JSONObject golden(String file) throws IOException {
        Path p = Path.of("..", "..", "tests", "golden", file);
        Assumptions.assumeTrue(Files.isRegularFile(p), p + " not found");
        return new JSONObject(Files.readString(p, StandardCharsets.UTF_8));
    }

    static byte[] base64(String s) {
        return Base64.getDecoder().decode(s);
    }

    static float[] base64Floats(String s) {
        ByteBuffer b = ByteBuffer.wrap(base64(s)).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[b.remaining() / 4];
        b.asFloatBuffer().get(out);
        return out;
    }

    /** The ktq CLI from $KTQ_BIN, or null. */
    static String cli() {
        String bin = System.getenv("KTQ_BIN");
        return bin == null || bin.isEmpty() ? null : bin;
    }

    static void runCli(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(cli());
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).inheritIO().start();
        assertEquals(0, p.waitFor(), String.join(" ", cmd));
    }

    /** One tensor of a .safetensors file, decoded independently of ktq. */
    record Stored(String dtype, long[] shape, byte[] data) {
        /** BF16 data as float32 (exact: a BF16 value is the top half of a float32). */
        float[] bf16() {
            assertEquals("BF16", dtype);
            ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
            float[] out = new float[data.length / 2];
            for (int i = 0; i < out.length; i++) out[i] = Float.intBitsToFloat((b.getShort(2 * i) & 0xFFFF) << 16);
            return out;
        }
    }

    /** The JSON header of a .safetensors file (8-byte little-endian length, then JSON). */
    static JSONObject safetensorsHeader(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            while (len.hasRemaining()) if (ch.read(len) < 0) throw new IOException("short file " + file);
            long n = len.flip().getLong();
            ByteBuffer json = ByteBuffer.allocate((int) n);
            while (json.hasRemaining()) if (ch.read(json) < 0) throw new IOException("short file " + file);
            return new JSONObject(new String(json.array(), StandardCharsets.UTF_8));
        }
    }

    static long[] shape(JSONObject entry) {
        JSONArray s = entry.getJSONArray("shape");
        long[] out = new long[s.length()];
        for (int i = 0; i < out.length; i++) out[i] = s.getLong(i);
        return out;
    }

    static Stored readSafetensors(Path file, String name) throws IOException {
        JSONObject header = safetensorsHeader(file);
        JSONObject e = header.getJSONObject(name);
        long base = 8 + headerLength(file);
        JSONArray off = e.getJSONArray("data_offsets");
        long begin = off.getLong(0), end = off.getLong(1);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer data = ByteBuffer.allocate((int) (end - begin));
            long pos = base + begin;
            while (data.hasRemaining()) {
                int r = ch.read(data, pos);
                if (r < 0) throw new IOException("short file " + file);
                pos += r;
            }
            return new Stored(e.getString("dtype"), shape(e), data.array());
        }
    }

    private static long headerLength(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            while (len.hasRemaining()) if (ch.read(len) < 0) throw new IOException("short file " + file);
            return len.flip().getLong();
        }
    }

    static List<String> names(Path dir) throws IOException {
        return KtqTest.names(dir);
    }
}
