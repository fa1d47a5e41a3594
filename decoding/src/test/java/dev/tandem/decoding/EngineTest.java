package dev.tandem.decoding;

import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The continuous-batching engine on bard-l: exactness against lone runs, memory, queueing, cancellation, failures. */
class EngineTest {
    private static final String LONG = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
            + "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n"
            + "First Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.";
    /** Prompts of different lengths, from one token to well over a prefill chunk of the tests below. */
    private static final String[] PROMPTS = {"ROMEO:", "First Citizen:", "KING HENRY VI:\nWhat", "O", LONG,
            "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?"};

    private static LanguageModel model;
    private static Generator generator;

    @BeforeAll
    static void load() {
        model = ModelLoader.load(TestModels.model("bard-l"));
        generator = new Generator(model);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static List<GenerationRequest> greedyRequests() {
        List<GenerationRequest> requests = new ArrayList<>();
        for (int i = 0; i < PROMPTS.length; i++) {
            requests.add(GenerationRequest.of(PROMPTS[i]).withMaxTokens(12 + 5 * i).withLogprobs(i % 3)
                    .withEosTokenIds(List.of()));
        }
        return requests;
    }

    private static List<GenerationRequest> sampledRequests() {
        List<GenerationRequest> requests = new ArrayList<>();
        for (int i = 0; i < PROMPTS.length; i++) {
            requests.add(GenerationRequest.of(PROMPTS[i]).withMaxTokens(30 - 3 * i)
                    .withSampling(new SamplingParams(0.9f, 40, 0.95f, 0.01f, 1.1f, 1234))
                    .withStreamId(100 + i).withLogprobs(i % 2 == 0 ? 2 : 0)
                    .withStop(i == 1 ? List.of("\n\n") : List.of()));
        }
        return requests;
    }

    private static List<GenerationResult> alone(List<GenerationRequest> requests) {
        return requests.stream().map(generator::generate).toList();
    }

    /** Everything but the timings. */
    private static void assertSameOutput(GenerationResult expected, GenerationResult actual, String what) {
        assertArrayEquals(expected.promptIds(), actual.promptIds(), what);
        assertArrayEquals(expected.generatedIds(), actual.generatedIds(), what);
        assertEquals(expected.text(), actual.text(), what);
        assertEquals(expected.finishReason(), actual.finishReason(), what);
        assertEquals(expected.usage(), actual.usage(), what);
        assertEquals(expected.logprobs(), actual.logprobs(), what + " (token events, log-probabilities bit for bit)");
    }

    private static void assertBatchedEqualsAlone(List<GenerationRequest> requests, Engine.Options options) {
        assertBatchedEqualsAlone(requests, options, false);
    }

    private static void assertBatchedEqualsAlone(List<GenerationRequest> requests, Engine.Options options, boolean checkShared) {
        List<GenerationResult> expected = alone(requests);
        int free = model.kvCache().freeBlocks();
        try (Engine engine = new Engine(model, options)) {
            List<EngineHandle> handles = requests.stream().map(engine::submit).toList();
            for (int i = 0; i < requests.size(); i++) {
                assertSameOutput(expected.get(i), handles.get(i).result(), "request " + i);
            }
            assertTrue(!checkShared || engine.stats().steps() < expected.stream().mapToInt(r -> r.generatedIds().length).sum(),
                    "requests shared forward passes");
        }
        assertEquals(free, model.kvCache().freeBlocks(), "every block returned");
    }

    @Test
    void batchedGreedyRequestsGiveBitIdenticalOutputToSeparateRuns() {
        assertBatchedEqualsAlone(greedyRequests(), Engine.Options.defaults(), true);
    }

    @Test
    void batchedSeededSamplingWithDistinctStreamIdsGivesBitIdenticalOutputToSeparateRuns() {
        assertBatchedEqualsAlone(sampledRequests(), Engine.Options.defaults(), true);
    }

    @Test
    void chunkedPrefillGivesTheSameTokensAsOneShotPrefill() {
        for (int chunk : new int[] {1, 3, 16}) {
            assertBatchedEqualsAlone(greedyRequests(), Engine.Options.defaults().withMaxPrefillTokensPerStep(chunk));
            assertBatchedEqualsAlone(sampledRequests(), Engine.Options.defaults().withMaxPrefillTokensPerStep(chunk));
        }
    }

    @Test
    void aLongPromptIsPrefilledInBoundedChunksBesideRunningDecodes() {
        List<int[]> batches = java.util.Collections.synchronizedList(new ArrayList<>());
        LanguageModel recording = (LanguageModel) Proxy.newProxyInstance(LanguageModel.class.getClassLoader(),
                new Class<?>[] {LanguageModel.class}, (proxy, method, args) -> {
                    if (method.getName().equals("forward")) {
                        batches.add(((Batch) args[0]).entries().stream().mapToInt(e -> e.tokens().length).toArray());
                    }
                    if (method.getName().equals("close")) {
                        return null;
                    }
                    try {
                        return method.invoke(model, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        GenerationRequest shortOne = GenerationRequest.of("ROMEO:").withMaxTokens(60).withEosTokenIds(List.of());
        GenerationRequest longOne = GenerationRequest.of(LONG).withMaxTokens(5).withEosTokenIds(List.of());
        int longTokens = generator.promptIds(longOne).length;
        assertTrue(longTokens > 40, "the long prompt has " + longTokens + " tokens");
        try (Engine engine = new Engine(recording, Engine.Options.defaults().withMaxPrefillTokensPerStep(8))) {
            EngineHandle a = engine.submit(shortOne);
            a.next();
            EngineHandle b = engine.submit(longOne);
            assertSameOutput(generator.generate(longOne), b.result(), "long");
            assertSameOutput(generator.generate(shortOne), a.result(), "short");
        }
        int beside = 0;
        for (int[] rows : batches) {
            int prefillRows = Arrays.stream(rows).filter(n -> n > 1).sum();
            assertTrue(prefillRows <= 8, "at most 8 prompt rows per step: " + Arrays.toString(rows));
            if (rows.length == 2 && Arrays.stream(rows).anyMatch(n -> n == 1) && prefillRows > 1) {
                beside++;
            }
        }
        assertTrue(beside >= longTokens / 8 - 1, "the short request decoded beside every chunk but the last: " + beside);
    }

    /** A task that never asks for a pass (a broken method): it would step forever without this check. */
    private static final class Stalled implements DecodingTask {
        private final DecodingTask real;

        Stalled(DecodingTask real) {
            this.real = real;
        }

        @Override public String method() { return "stalled"; }
        @Override public List<LanguageModel> models() { return real.models(); }
        @Override public int blocksNeeded(LanguageModel m) { return real.blocksNeeded(m); }
        @Override public void start(KvSource kv) { real.start(kv); }
        @Override public void beginStep() { real.beginStep(); }
        @Override public List<Batch.Entry> next(LanguageModel m, PrefillBudget prefill) { return List.of(); }
        @Override public void advance(LanguageModel m, dev.tandem.transformer.ForwardResult r, long nanos) { real.advance(m, r, nanos); }
        @Override public List<TokenEvent> endStep() { return real.endStep(); }
        @Override public boolean finished() { return real.finished(); }
        @Override public GenerationResult result() { return real.result(); }
        @Override public void end(FinishReason reason) { real.end(reason); }
        @Override public void abandon() { real.abandon(); }
    }

    @Test
    void aTaskThatStopsAskingForPassesFailsInsteadOfSpinning() {
        DecodingStrategy stalled = new DecodingStrategy() {
            @Override
            public String name() {
                return "stalled";
            }

            @Override
            public DecodingTask task(GenerationRequest request) {
                return new Stalled(generator.task(request));
            }
        };
        GenerationRequest r = GenerationRequest.of("ROMEO:").withMaxTokens(8);
        assertTimeoutPreemptively(java.time.Duration.ofMinutes(2), () -> {
            IllegalStateException alone = assertThrows(IllegalStateException.class, () -> stalled.generate(r));
            assertTrue(alone.getMessage().contains("would never finish"), alone.getMessage());
            try (Engine engine = new Engine(model)) {
                EngineHandle bad = engine.submit(r, stalled, null);
                IllegalStateException e = assertThrows(IllegalStateException.class, bad::result);
                assertTrue(e.getMessage().contains("stalled task asked for no forward pass"), e.getMessage());
                assertSameOutput(generator.generate(r), engine.generate(r), "a good request after it");
            }
        });
        assertEquals(0, model.kvCache().usedBlocks());
    }

    @Test
    void requestsFromFiveThreadsAtOnceGiveBitIdenticalOutputToSeparateRuns() throws Exception {
        List<GenerationRequest> requests = new ArrayList<>(sampledRequests().subList(0, 3));
        requests.addAll(greedyRequests().subList(3, 5));
        List<GenerationResult> expected = alone(requests);
        ExecutorService pool = Executors.newFixedThreadPool(requests.size());
        try (Engine engine = new Engine(model, Engine.Options.defaults().withMaxPrefillTokensPerStep(8))) {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<GenerationResult>> futures = new ArrayList<>();
            for (GenerationRequest r : requests) {
                futures.add(pool.submit(() -> {
                    start.await();
                    // Half the threads stream, half block on the result.
                    try (EngineHandle h = engine.submit(r)) {
                        if (r.streamId() % 2 == 0) {
                            while (h.hasNext()) {
                                h.next();
                            }
                        }
                        return h.result();
                    }
                }));
            }
            start.countDown();
            for (int i = 0; i < requests.size(); i++) {
                assertSameOutput(expected.get(i), futures.get(i).get(), "thread " + i);
            }
        } finally {
            pool.shutdown();
        }
        assertEquals(0, model.kvCache().usedBlocks(), "every block returned");
    }

    @Test
    void streamedEventsAndListenerSeeExactlyTheResultsTokens() {
        GenerationRequest r = sampledRequests().get(1);
        List<TokenEvent> heard = new ArrayList<>();
        try (Engine engine = new Engine(model); EngineHandle h = engine.submit(r, heard::add)) {
            List<TokenEvent> streamed = new ArrayList<>();
            StringBuilder text = new StringBuilder();
            while (h.hasNext()) {
                TokenEvent e = h.next();
                streamed.add(e);
                text.append(e.textDelta());
            }
            assertFalse(h.hasNext());
            GenerationResult result = h.result();
            assertEquals(result.logprobs(), streamed);
            assertEquals(result.logprobs(), heard);
            assertEquals(result.text(), text.toString());
            assertSameOutput(generator.generate(r), result, "streamed");
        }
    }

    @Test
    void exhaustedKvMemoryQueuesRequestsAndCompletesThemAllUncorrupted() {
        // 8 blocks of 16 tokens; each request reserves at least 4 (its prompt + 48 tokens > 48), so at most two run at a time.
        try (LanguageModel small = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withKvTokens(128))) {
            assertEquals(8, small.kvCache().numBlocks());
            List<GenerationRequest> requests = new ArrayList<>();
            for (int i = 0; i < PROMPTS.length; i++) {
                if (!PROMPTS[i].equals(LONG)) {
                    requests.add(GenerationRequest.of(PROMPTS[i]).withMaxTokens(48).withEosTokenIds(List.of())
                            .withSampling(new SamplingParams(0.8f, 0, 1f, 0f, 1f, 5)).withStreamId(i));
                }
            }
            List<GenerationResult> expected = alone(requests);
            try (Engine engine = new Engine(small)) {
                List<EngineHandle> handles = requests.stream().map(engine::submit).toList();
                Engine.Stats stats = engine.stats();
                assertTrue(stats.queued() >= requests.size() - 2, "the requests that do not fit wait: " + stats);
                assertTrue(stats.running() <= 2, stats.toString());
                assertTrue(stats.reservedBlocks() <= stats.totalBlocks(), stats.toString());
                for (int i = 0; i < requests.size(); i++) {
                    assertSameOutput(expected.get(i), handles.get(i).result(), "request " + i);
                    Engine.Stats s = engine.stats();
                    assertTrue(s.usedBlocks() <= s.reservedBlocks() && s.reservedBlocks() <= s.totalBlocks(), s.toString());
                }
                Engine.Stats end = engine.stats();
                assertEquals(new Engine.Stats(8, 0, 8, 0, 16, 0, 0, end.steps()), end);
            }
        }
    }

    @Test
    void aRequestLargerThanTheWholeCacheIsRejectedWithASentence() {
        try (LanguageModel small = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withKvTokens(64));
             Engine engine = new Engine(small)) {
            TandemException e = assertThrows(TandemException.class,
                    () -> engine.submit(GenerationRequest.of("ROMEO:").withMaxTokens(100)));
            assertTrue(e.getMessage().contains("KV blocks") && e.getMessage().endsWith("."), e.getMessage());
        }
    }

    @Test
    void submittingToAFullQueueFailsAtOnceWithASentenceAndQueuedRequestsCanBeCancelled() {
        // 16 blocks; each request reserves 13 (prompt + 200 tokens), so one runs and one waits.
        try (LanguageModel small = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withKvTokens(256));
             Engine engine = new Engine(small, Engine.Options.defaults().withMaxQueued(1))) {
            GenerationRequest r = GenerationRequest.of("ROMEO:").withMaxTokens(200).withEosTokenIds(List.of());
            EngineHandle running = engine.submit(r);
            assertTrue(running.hasNext(), "the first request runs");
            EngineHandle waiting = engine.submit(r);
            TandemException e = assertThrows(TandemException.class, () -> engine.submit(r));
            assertTrue(e.getMessage().startsWith("the request queue is full (1 waiting)") && e.getMessage().endsWith("."),
                    e.getMessage());
            assertEquals(1, engine.stats().queued());

            waiting.close();
            GenerationResult cancelled = waiting.result();
            assertEquals(FinishReason.CANCELLED, cancelled.finishReason());
            assertEquals(0, cancelled.generatedIds().length);
            assertFalse(waiting.hasNext());

            EngineHandle next = engine.submit(r.withStreamId(9)); // room in the queue again, not yet in memory
            assertEquals(1, engine.stats().queued());
            running.cancel();
            assertEquals(FinishReason.CANCELLED, running.result().finishReason());
            assertSameOutput(generator.generate(r.withStreamId(9)), next.result(), "admitted once memory freed");
        }
    }

    @Test
    void cancellingARunningRequestFreesItsBlocksAndLeavesOthersUnaffected() {
        List<GenerationRequest> requests = new ArrayList<>(sampledRequests().subList(0, 4).stream()
                .map(r -> r.withMaxTokens(40).withStop(List.of()).withEosTokenIds(List.of())).toList());
        requests.set(1, requests.get(1).withMaxTokens(600)); // long enough to be cancelled from this thread
        List<GenerationResult> expected = alone(requests);
        int free = model.kvCache().freeBlocks();
        try (Engine engine = new Engine(model)) {
            List<EngineHandle> handles = requests.stream().map(engine::submit).toList();
            EngineHandle victim = handles.get(1);
            for (int i = 0; i < 3; i++) {
                victim.next();
            }
            victim.close(); // waits until the engine has ended it
            GenerationResult cut = victim.result();
            assertEquals(FinishReason.CANCELLED, cut.finishReason());
            int n = cut.generatedIds().length;
            assertTrue(n >= 3 && n < 600, "cancelled at a step boundary after " + n + " tokens");
            assertArrayEquals(Arrays.copyOf(expected.get(1).generatedIds(), n), cut.generatedIds(), "a prefix of its own run");
            for (int i : new int[] {0, 2, 3}) {
                assertSameOutput(expected.get(i), handles.get(i).result(), "request " + i);
            }
        }
        assertEquals(free, model.kvCache().freeBlocks(), "every block returned");
    }

    @Test
    void closingTheEngineWithRequestsInFlightCancelsThemAndFreesTheirBlocks() {
        try (LanguageModel small = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withKvTokens(512))) {
            Engine engine = new Engine(small);
            List<EngineHandle> handles = new ArrayList<>();
            for (String p : PROMPTS) {
                handles.add(engine.submit(GenerationRequest.of(p).withMaxTokens(200).withEosTokenIds(List.of())));
            }
            assertTrue(handles.getFirst().hasNext());
            assertTrue(engine.stats().queued() > 0, "some wait for memory: " + engine.stats());
            assertTimeoutPreemptively(java.time.Duration.ofSeconds(30), engine::close);
            for (EngineHandle h : handles) {
                assertEquals(FinishReason.CANCELLED, h.result().finishReason());
                assertTrue(h.isDone());
            }
            assertEquals(0, small.kvCache().usedBlocks(), "every block returned");
            TandemException e = assertThrows(TandemException.class, () -> engine.submit(GenerationRequest.of("x")));
            assertEquals("the engine is closed, so it accepts no new requests.", e.getMessage());
            engine.close(); // twice is fine
        }
    }

    @Test
    void aFailingForwardPassFailsTheRequestsInThatStepAndTheEngineGoesOn() {
        AtomicBoolean armed = new AtomicBoolean();
        RuntimeException boom = new IllegalStateException("injected forward failure");
        LanguageModel faulty = (LanguageModel) Proxy.newProxyInstance(LanguageModel.class.getClassLoader(),
                new Class<?>[] {LanguageModel.class}, (proxy, method, args) -> {
                    if (method.getName().equals("forward") && armed.compareAndSet(true, false)) {
                        throw boom;
                    }
                    if (method.getName().equals("close")) {
                        return null; // the shared model stays open
                    }
                    try {
                        return method.invoke(model, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        int free = model.kvCache().freeBlocks();
        GenerationRequest r = GenerationRequest.of("ROMEO:").withMaxTokens(500).withEosTokenIds(List.of());
        try (Engine engine = new Engine(faulty)) {
            EngineHandle a = engine.submit(r);
            EngineHandle b = engine.submit(r.withStreamId(1));
            a.next();
            armed.set(true);
            assertSame(boom, assertThrows(IllegalStateException.class, a::result));
            assertSame(boom, assertThrows(IllegalStateException.class, b::result));
            while (a.hasNext()) {
                a.next(); // the stream ends
            }
            assertEquals(free, model.kvCache().freeBlocks(), "the failed requests' blocks are freed");

            GenerationRequest later = sampledRequests().get(2);
            assertSameOutput(generator.generate(later), engine.submit(later).result(), "after the failure");
        }
        assertEquals(free, model.kvCache().freeBlocks());
    }

    @Test
    void aThrowingListenerFailsOnlyItsOwnRequest() {
        RuntimeException boom = new IllegalArgumentException("listener failed");
        List<GenerationRequest> requests = greedyRequests().subList(0, 3);
        List<GenerationResult> expected = alone(requests);
        try (Engine engine = new Engine(model)) {
            EngineHandle bad = engine.submit(requests.get(0), e -> {
                if (e.index() == 2) {
                    throw boom;
                }
            });
            EngineHandle x = engine.submit(requests.get(1));
            EngineHandle y = engine.submit(requests.get(2));
            assertSame(boom, assertThrows(IllegalArgumentException.class, bad::result));
            assertSameOutput(expected.get(1), x.result(), "x");
            assertSameOutput(expected.get(2), y.result(), "y");
        }
        assertEquals(0, model.kvCache().usedBlocks());
    }

    @Test
    void theLanguageModelForwardStaysUsableBesideTheEngine() {
        // A Generator and raw forward passes on the same model while the engine runs.
        GenerationRequest r = sampledRequests().get(0);
        try (Engine engine = new Engine(model)) {
            EngineHandle h = engine.submit(r);
            GenerationResult direct = generator.generate(r);
            try (var seq = model.newSequence()) {
                model.forward(Batch.of(Batch.Entry.continuation(seq, model.tokenizer().encode("ROMEO:"))));
            }
            assertSameOutput(direct, h.result(), "engine beside a generator");
        }
        assertEquals(0, model.kvCache().usedBlocks());
    }
}
