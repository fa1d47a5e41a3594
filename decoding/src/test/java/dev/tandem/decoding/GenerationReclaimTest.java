package dev.tandem.decoding;

import dev.tandem.runtime.kv.KvCache;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BooleanSupplier;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A {@link Generation} dropped without {@code close()} gives its KV blocks back once it is unreachable,
 * and says so in a warning; one that was closed or drained says nothing.
 */
class GenerationReclaimTest {
    private static LanguageModel model;
    private static KvCache cache;
    // System.getLogger maps to java.util.logging by default; hold the logger so its handler stays.
    private final Logger logger = Logger.getLogger("dev.tandem.decoding");
    private final List<LogRecord> records = new CopyOnWriteArrayList<>();
    private final Handler handler = new Handler() {
        @Override
        public void publish(LogRecord record) {
            records.add(record);
        }

        @Override
        public void flush() {
        }

        @Override
        public void close() {
        }
    };

    @BeforeAll
    static void load() {
        model = ModelLoader.load(TestModels.model("bard-s"));
        cache = model.kvCache();
    }

    @AfterAll
    static void unload() {
        model.close();
    }

    @BeforeEach
    void listen() {
        logger.addHandler(handler);
    }

    @AfterEach
    void stopListening() {
        logger.removeHandler(handler);
    }

    private static final String PROMPT = "the quick brown fox jumps over the lazy dog and keeps on running ".repeat(4);

    private static GenerationRequest request(int maxTokens) {
        return GenerationRequest.of(PROMPT).withMaxTokens(maxTokens).withEosTokenIds(List.of());
    }

    private static int promptLength() {
        return new Generator(model).promptIds(request(1)).length;
    }

    /**
     * Starts a generation of at most {@code maxTokens}, takes {@code steps} tokens (the prefill and then
     * one pass per token), closes it or not, and drops it; returns the blocks it held after its steps.
     */
    private static int startAndDrop(int maxTokens, int steps, boolean close) {
        Generation g = new Generator(model).stream(request(maxTokens));
        int before = cache.usedBlocks();
        for (int i = 0; i < steps; i++) {
            g.next();
        }
        int held = cache.usedBlocks() - before;
        if (close) {
            g.close();
        }
        return held;
    }

    /** Collects garbage until {@code done} or a few seconds have passed; returns {@code done}'s last answer. */
    private static boolean gcUntil(BooleanSupplier done) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (!done.getAsBoolean() && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(20);
        }
        return done.getAsBoolean();
    }

    /**
     * Warnings about generations of {@link #PROMPT} dropped while holding {@code positions} positions
     * (other test classes in this JVM may drop generations of their own).
     */
    private List<String> warnings(int... positions) {
        return records.stream().filter(r -> r.getLevel() == Level.WARNING).map(LogRecord::getMessage)
                .filter(m -> Arrays.stream(positions).anyMatch(p -> m.contains(" of " + p + " positions ")))
                .toList();
    }

    @Test
    void anAbandonedGenerationGivesItsBlocksBackOnceUnreachable() throws InterruptedException {
        int start = cache.usedBlocks();
        int positions = promptLength() + 1; // the prompt and the first token, fed back
        int held = startAndDrop(50, 1, false);
        assertTrue(held >= 2, "the prompt spans several blocks, held " + held);
        assertEquals(start + held, cache.usedBlocks(), "nothing is freed while the generation may still be reachable");

        assertTrue(gcUntil(() -> cache.usedBlocks() == start && !warnings(positions).isEmpty()),
                "blocks in use " + cache.usedBlocks() + ", at the start " + start + ", warnings " + warnings(positions));
        assertEquals(start, cache.usedBlocks());
        List<String> warnings = warnings(positions);
        assertEquals(1, warnings.size(), warnings.toString());
        assertEquals("a Generation was not closed: its KV sequence of " + positions + " positions in " + held
                + " blocks was reclaimed when the Generation became unreachable; close generations (or drain them) "
                + "to free their KV blocks at once.", warnings.getFirst());
    }

    @Test
    void aClosedOrDrainedGenerationLogsNothing() throws InterruptedException {
        int start = cache.usedBlocks();
        int prompt = promptLength();
        assertTrue(startAndDrop(50, 1, true) >= 2);
        assertEquals(start, cache.usedBlocks(), "close frees at once");
        startAndDrop(3, 3, false);
        assertEquals(start, cache.usedBlocks(), "the end of a generation frees at once");

        // An abandoned one (2 tokens, so told apart by its positions) is reclaimed and reported; by then
        // the collector has had the same chance at the two before it, which must have said nothing.
        int held = startAndDrop(50, 2, false);
        assertTrue(gcUntil(() -> cache.usedBlocks() == start && !warnings(prompt + 2).isEmpty()), "not reclaimed");
        List<String> warnings = warnings(prompt + 1, prompt + 2, prompt + 3, 0);
        assertEquals(1, warnings.size(), "only the abandoned generation is reported: " + warnings);
        assertTrue(warnings.getFirst().contains(" of " + (prompt + 2) + " positions in " + held + " blocks"), warnings.getFirst());
    }
}
