package io.ktq;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.jupiter.api.Test;

/** Tokenizer against tests/golden/tokens.json (made by Hugging Face tokenizers). */
class TokenizerTest {
    record Case(String text, int[] ids) {}

    static List<Case> golden() throws Exception {
        JSONArray cases = TestData.golden("tokens.json").getJSONObject("models").getJSONArray("tiny-qwen3-moe");
        List<Case> out = new ArrayList<>();
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            JSONArray ids = c.getJSONArray("ids");
            int[] want = new int[ids.length()];
            for (int k = 0; k < want.length; k++) want[k] = ids.getInt(k);
            out.add(new Case(c.getString("text"), want));
        }
        assertFalse(out.isEmpty());
        return out;
    }

    @Test
    void encodesAsHuggingFaceTokenizers() throws Exception {
        Path dir = TestData.sharedModel("tiny-qwen3-moe");
        List<Case> cases = golden();
        try (Tokenizer t = Tokenizer.open(dir); Tokenizer fromFile = Tokenizer.open(dir.resolve("tokenizer.json"))) {
            int max = 0;
            for (Case c : cases) {
                assertArrayEquals(c.ids(), t.encode(c.text()), c.text());
                assertArrayEquals(c.ids(), fromFile.encode(c.text()), c.text());
                for (int id : c.ids()) max = Math.max(max, id);
            }
            assertTrue(t.vocabSize() > max, "vocab " + t.vocabSize());
            assertEquals(t.vocabSize(), fromFile.vocabSize());
            assertEquals(0, t.encode("").length);
            // A long text: many more ids than any golden case.
            String longText = (cases.get(0).text() + "\n").repeat(2000);
            int[] ids = t.encode(longText);
            assertTrue(ids.length >= 2000 * cases.get(0).ids().length, Integer.toString(ids.length));
        }
    }

    @Test
    void encodesOnManyThreadsAndClosesCleanly() throws Exception {
        Path dir = TestData.sharedModel("tiny-qwen3-moe");
        List<Case> cases = golden();
        Tokenizer t = Tokenizer.open(dir);
        AtomicInteger ok = new AtomicInteger();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        for (int n = 0; n < 4; n++) {
            Thread th = new Thread(() -> {
                try {
                    for (int i = 0; i < 50; i++)
                        for (Case c : cases)
                            if (java.util.Arrays.equals(c.ids(), t.encode(c.text()))) ok.incrementAndGet();
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            threads.add(th);
            th.start();
        }
        for (Thread th : threads) th.join();
        assertNull(failure.get());
        assertEquals(4 * 50 * cases.size(), ok.get());
        t.close();
        t.close();
        assertThrows(IllegalStateException.class, () -> t.encode("Hello"));
        assertThrows(IllegalStateException.class, t::vocabSize);
    }

    @Test
    void closeWhileEncodingWaitsAndLaterCallsFail() throws Exception {
        Path dir = TestData.sharedModel("tiny-qwen3-moe");
        List<Case> cases = golden();
        Tokenizer t = Tokenizer.open(dir);
        AtomicInteger closedSeen = new AtomicInteger(), encoded = new AtomicInteger();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        for (int n = 0; n < 4; n++) {
            Thread th = new Thread(() -> {
                try {
                    while (true) {
                        for (Case c : cases) {
                            assertArrayEquals(c.ids(), t.encode(c.text()));
                            encoded.incrementAndGet();
                        }
                    }
                } catch (IllegalStateException e) {
                    closedSeen.incrementAndGet();
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            threads.add(th);
            th.start();
        }
        while (encoded.get() < 100) Thread.sleep(1);
        t.close();
        for (Thread th : threads) th.join();
        assertNull(failure.get());
        assertEquals(4, closedSeen.get());
    }
}
