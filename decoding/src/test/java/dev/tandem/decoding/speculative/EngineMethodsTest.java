package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 12's acceptance: through one {@link Engine}, every lossless method gives each request exactly
 * the tokens the request gives alone — 16 prompts of mixed lengths, greedy and sampled; requests of
 * different methods mixed in one run; and requests submitted from 8 threads at once. The engine chunks
 * prompts (8 rows per model per step), so prefill chunking is covered too.
 */
class EngineMethodsTest {
    private static final int PROMPTS = 16;
    private static LanguageModel target;
    private static LanguageModel draft;
    private static LanguageModel pearlDraft; // on its own backend: its passes run beside the target's
    private static Map<String, DecodingStrategy> methods;
    private static List<GenerationRequest> requests;

    @BeforeAll
    static void load() throws Exception {
        target = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withThreads(2));
        draft = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(target.backend()));
        pearlDraft = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withThreads(1));
        methods = new LinkedHashMap<>();
        methods.put("plain", new Generator(target));
        methods.put("speculative", new SpeculativeDecoding(target, draft, 3));
        methods.put("auto", SpeculativeDecoding.adaptive(target, draft));
        methods.put("ngram", new PromptLookupDecoding(target));
        methods.put("tree", new TreeDecoding(target, draft, 8, 2, 3));
        methods.put("aded", new AdedDecoding(target, TrigramTable.fromCorpus(target.tokenizer(), TrigramTableTest.excerpt())));
        methods.put("lookahead", new LookaheadDecoding(target));
        methods.put("pearl", new PearlDecoding(target, pearlDraft, 3));
        List<String> texts = SpeculativeFixtures.goldenPromptsAnd(List.of(
                "ROMEO:", "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?", "First Citizen:\nWe are accounted poor citizens",
                "KING RICHARD III:\nNow is the winter of our discontent\nMade glorious summer by this sun of York;",
                "A", "MENENIUS:\nEither you must\nConfess yourselves wondrous malicious,\nOr be accused of folly.",
                "HAMLET:\nTo be, or not to be", "\n", "LEONTES:\nToo hot, too hot!", "DUKE VINCENTIO:\nHe who the sword of heaven will bear",
                "CORIOLANUS:\nWhat's the matter, you dissentious rogues,", "Nurse:", "GLOUCESTER:\n"));
        requests = new ArrayList<>();
        for (int i = 0; i < PROMPTS; i++) {
            GenerationRequest r = GenerationRequest.of(texts.get(i % texts.size())).withMaxTokens(10 + (i * 7) % 13).withStreamId(i);
            if (i % 2 == 1) {
                r = r.withSampling(SamplingParams.greedy().withTemperature(0.8f).withSeed(1000 + i));
            }
            requests.add(r);
        }
    }

    @AfterAll
    static void close() {
        pearlDraft.close();
        draft.close();
        target.close();
    }

    private static Engine engine() {
        return new Engine(target, Engine.Options.defaults().withMaxPrefillTokensPerStep(8));
    }

    private static void assertSame(GenerationResult alone, GenerationResult together, String what) {
        assertArrayEquals(alone.generatedIds(), together.generatedIds(), what);
        assertEquals(alone.finishReason(), together.finishReason(), what);
        assertEquals(alone.text(), together.text(), what);
    }

    @Test
    void everyMethodGivesEachRequestItsOwnTokensAmongFifteenOthers() {
        for (Map.Entry<String, DecodingStrategy> m : methods.entrySet()) {
            List<GenerationResult> alone = new ArrayList<>();
            for (GenerationRequest r : requests) {
                alone.add(m.getValue().generate(r));
            }
            try (Engine engine = engine()) {
                List<EngineHandle> handles = new ArrayList<>();
                for (GenerationRequest r : requests) {
                    handles.add(engine.submit(r, m.getValue(), null));
                }
                for (int i = 0; i < PROMPTS; i++) {
                    // Adaptive speculation is speculative decoding with a k that follows acceptance.
                    assertEquals(m.getKey().equals("auto") ? "speculative" : m.getKey(), handles.get(i).method());
                    assertSame(alone.get(i), handles.get(i).result(), m.getKey() + " request " + i);
                }
                assertTrue(engine.stats().steps() > 0);
                assertEquals(0, engine.stats().reservedBlocks(), "every reservation ended");
            }
            assertEquals(0, target.kvCache().usedBlocks(), m.getKey() + " left KV blocks behind");
        }
    }

    /** A request's decode steps are its rounds, the last one included (plain: one per token after the first). */
    @Test
    void everyRoundIsOneDecodeStepTheLastIncluded() {
        for (Map.Entry<String, DecodingStrategy> m : methods.entrySet()) {
            for (GenerationRequest r : requests.subList(0, 4)) {
                GenerationResult result = m.getValue().generate(r);
                long expected = m.getKey().equals("plain") ? result.generatedIds().length - 1 : result.decodeStats().verifications();
                assertEquals(expected, result.stats().decodeSteps(), m.getKey() + ": " + result.decodeStats());
            }
        }
    }

    /**
     * A draft that is the target itself keeps two sequences in one cache: the reservation covers both, so
     * a long request runs to its end (every draft accepted: the tokens are plain decoding's).
     */
    @Test
    void aDraftThatIsTheTargetReservesForBothSequences() {
        GenerationRequest r = GenerationRequest.of(requests.get(3).prompt()).withMaxTokens(60);
        GenerationResult plain = new Generator(target).generate(r);
        try (Engine engine = engine()) {
            for (DecodingStrategy self : List.of(new SpeculativeDecoding(target, target, 3), new TreeDecoding(target, target, 8, 2, 3),
                    new PearlDecoding(target, target, 3))) {
                EngineHandle h = engine.submit(r, self, null);
                assertSame(plain, h.result(), h.method() + " drafting with the target");
            }
            assertEquals(0, engine.stats().reservedBlocks(), "every reservation ended");
        }
        assertEquals(0, target.kvCache().usedBlocks());
    }

    /** Request i decoded by the i-th method (cycling), alone and then all together. */
    private static List<GenerationResult> aloneMixed(List<DecodingStrategy> strategies) {
        List<GenerationResult> alone = new ArrayList<>();
        for (int i = 0; i < PROMPTS; i++) {
            alone.add(strategies.get(i % strategies.size()).generate(requests.get(i)));
        }
        return alone;
    }

    @Test
    void requestsOfDifferentMethodsShareTheEngine() {
        List<DecodingStrategy> strategies = List.copyOf(methods.values());
        List<GenerationResult> alone = aloneMixed(strategies);
        try (Engine engine = engine()) {
            List<EngineHandle> handles = new ArrayList<>();
            for (int i = 0; i < PROMPTS; i++) {
                handles.add(engine.submit(requests.get(i), strategies.get(i % strategies.size()), null));
            }
            for (int i = 0; i < PROMPTS; i++) {
                assertSame(alone.get(i), handles.get(i).result(), "request " + i + " by " + handles.get(i).method());
            }
        }
    }

    @Test
    void requestsSubmittedFromEightThreadsAtOnce() throws Exception {
        List<DecodingStrategy> strategies = List.copyOf(methods.values());
        List<GenerationResult> alone = aloneMixed(strategies);
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try (Engine engine = engine()) {
            List<Future<GenerationResult>> results = new ArrayList<>();
            java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
            for (int i = 0; i < PROMPTS; i++) {
                int index = i;
                results.add(pool.submit(() -> {
                    go.await();
                    return engine.submit(requests.get(index), strategies.get(index % strategies.size()), null).result();
                }));
            }
            go.countDown();
            for (int i = 0; i < PROMPTS; i++) {
                assertSame(alone.get(i), results.get(i).get(), "request " + i);
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
