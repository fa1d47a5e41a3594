package dev.tandem.decoding.mix;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 16's acceptance for the logit-mixing methods: each formula against a direct computation from separate forward
 * passes of each view (bard-l expert, bard-s amateur; bard-m / bard-s as tuned / base; a Shakespeare passage as CAD's
 * context), the identities that make each method plain decoding bit for bit, the Engine, and bad input.
 */
public class LogitMixDecodingTest {
    static final String CONTEXT = """
            KING RICHARD III:
            Now is the winter of our discontent
            Made glorious summer by this sun of York;
            And all the clouds that lour'd upon our house
            In the deep bosom of the ocean buried.
            """;
    static final List<String> PROMPTS = List.of("ROMEO:", "First Citizen:\nWe are accounted poor citizens", "\n");
    static final int MAX_TOKENS = 24;
    static LanguageModel large;
    static LanguageModel medium;
    static LanguageModel small;

    @BeforeAll
    static void load() throws Exception {
        large = ModelLoader.load(TestModels.model("bard-l"));
        medium = ModelLoader.load(TestModels.model("bard-m"), ModelLoader.Options.defaults().withBackend(large.backend()));
        small = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(large.backend()));
    }

    @AfterAll
    static void close() {
        small.close();
        medium.close();
        large.close();
    }

    /** A view's next-token logits at each generated position, from its own passes: the prompt, then one token a pass. */
    static List<float[]> separatePasses(LanguageModel model, int[] prompt, int[] generated) {
        List<float[]> out = new ArrayList<>();
        try (KvSequence kv = model.newSequence()) {
            out.add(model.forward(Batch.of(Batch.Entry.continuation(kv, prompt))).lastLogits(0));
            for (int i = 0; i + 1 < generated.length; i++) {
                out.add(model.forward(Batch.of(Batch.Entry.continuation(kv, generated[i]))).lastLogits(0));
            }
        }
        return out;
    }

    /** A reference score row from the views' rows at one position, in double. */
    @FunctionalInterface
    interface Formula {
        double[] of(List<float[]> views);
    }

    private static int[] ids(LanguageModel m, String text) {
        return new Generator(m).promptIds(GenerationRequest.of(text));
    }

    /**
     * Runs {@code method} greedily on each prompt (tracing its mixed rows), recomputes each position's row from
     * separate passes of the views ({@code viewPrompts} gives each view's sequence for a prompt) with {@code formula},
     * and requires the rows to agree within 1e-5 (the same tokens masked) and each token to be the reference's argmax.
     */
    private static void checkAgainstSeparatePasses(LogitMixDecoding method, List<LanguageModel> viewModels,
                                                   Function<String, List<int[]>> viewPrompts, Formula formula) {
        for (String prompt : PROMPTS) {
            List<float[]> traced = new ArrayList<>();
            GenerationResult r = method.traced(traced::add).generate(GenerationRequest.of(prompt).withMaxTokens(MAX_TOKENS));
            int[] generated = r.generatedIds();
            assertEquals(generated.length, traced.size(), "one mixed row per token");
            List<int[]> prompts = viewPrompts.apply(prompt);
            assertArrayEquals(prompts.getFirst(), r.promptIds(), "the result's prompt is the first view's sequence");
            List<List<float[]>> rows = new ArrayList<>();
            for (int v = 0; v < viewModels.size(); v++) {
                rows.add(separatePasses(viewModels.get(v), prompts.get(v), generated));
            }
            for (int pos = 0; pos < generated.length; pos++) {
                List<float[]> at = new ArrayList<>();
                for (List<float[]> view : rows) {
                    at.add(view.get(pos));
                }
                double[] expected = formula.of(at);
                float[] got = traced.get(pos);
                int best = 0;
                for (int t = 0; t < expected.length; t++) {
                    String where = method.name() + " \"" + prompt + "\" position " + pos + " token " + t;
                    if (expected[t] == Double.NEGATIVE_INFINITY) {
                        assertEquals(Float.NEGATIVE_INFINITY, got[t], where + " is outside the plausible set");
                    } else {
                        assertEquals(expected[t], got[t], 1e-5 * Math.max(1, Math.abs(expected[t])), where);
                    }
                    best = expected[t] > expected[best] ? t : best;
                }
                assertEquals(best, generated[pos], method.name() + " \"" + prompt + "\" position " + pos + ": the greedy token");
            }
        }
    }

    @Test
    void contrastiveEqualsItsFormulaOnSeparatePasses() {
        double alpha = 0.1, beta = 0.5;
        checkAgainstSeparatePasses(LogitMixDecoding.contrastive(large, small, alpha, beta), List.of(large, small),
                p -> List.of(ids(large, p), ids(small, p)), v -> {
                    float[] e = v.get(0), a = v.get(1);
                    double max = Double.NEGATIVE_INFINITY, z = 0;
                    for (float x : e) {
                        max = Math.max(max, x);
                    }
                    for (float x : e) {
                        z += Math.exp(x - max);
                    }
                    double[] out = new double[e.length];
                    for (int t = 0; t < e.length; t++) {
                        boolean plausible = Math.exp(e[t] - max) / z >= alpha * (1 / z);
                        out[t] = plausible ? (1 + beta) * e[t] - beta * a[t] : Double.NEGATIVE_INFINITY;
                    }
                    return out;
                });
    }

    @Test
    void proxyTuningEqualsItsFormulaOnSeparatePasses() {
        double alpha = 1.0;
        checkAgainstSeparatePasses(LogitMixDecoding.proxyTuning(large, medium, small, alpha), List.of(large, medium, small),
                p -> List.of(ids(large, p), ids(medium, p), ids(small, p)), v -> {
                    double[] out = new double[v.get(0).length];
                    for (int t = 0; t < out.length; t++) {
                        out[t] = v.get(0)[t] + alpha * ((double) v.get(1)[t] - v.get(2)[t]);
                    }
                    return out;
                });
    }

    @Test
    void contextAwareDecodingEqualsItsFormulaOnSeparatePasses() {
        double alpha = 0.5;
        int[] context = ids(large, CONTEXT);
        checkAgainstSeparatePasses(LogitMixDecoding.contextAware(large, CONTEXT, alpha), List.of(large, large), p -> {
            int[] prompt = large.tokenizer().encode(p);
            int[] first = Arrays.copyOf(context, context.length + prompt.length);
            System.arraycopy(prompt, 0, first, context.length, prompt.length);
            return List.of(first, ids(large, p));
        }, v -> {
            double[] out = new double[v.get(0).length];
            for (int t = 0; t < out.length; t++) {
                out[t] = (1 + alpha) * v.get(0)[t] - alpha * v.get(1)[t];
            }
            return out;
        });
    }

    @Test
    void guidanceEqualsItsFormulaOnSeparatePasses() {
        double scale = 1.5;
        String negative = "JULIET:";
        checkAgainstSeparatePasses(LogitMixDecoding.guidance(large, negative, scale), List.of(large, large),
                p -> List.of(ids(large, p), ids(large, negative)), v -> {
                    double[] out = new double[v.get(0).length];
                    for (int t = 0; t < out.length; t++) {
                        out[t] = v.get(1)[t] + scale * ((double) v.get(0)[t] - v.get(1)[t]);
                    }
                    return out;
                });
    }

    private static void assertPlain(DecodingStrategy method, Function<String, GenerationRequest> plainRequest) {
        MixChecks.assertPlain(large, PROMPTS, MAX_TOKENS, method, plainRequest);
    }

    @Test
    void theNeutralSettingsArePlainDecodingBitForBit() {
        assertPlain(LogitMixDecoding.contrastive(large, small, 0, 0), GenerationRequest::of);
        assertPlain(LogitMixDecoding.proxyTuning(large, medium, small, 0), GenerationRequest::of);
        assertPlain(LogitMixDecoding.guidance(large, "JULIET:", 1), GenerationRequest::of);
        int[] context = ids(large, CONTEXT);
        assertPlain(LogitMixDecoding.contextAware(large, CONTEXT, 0), p -> {
            int[] prompt = large.tokenizer().encode(p);
            int[] first = Arrays.copyOf(context, context.length + prompt.length);
            System.arraycopy(prompt, 0, first, context.length, prompt.length);
            return GenerationRequest.ofIds(first);
        });
    }

    @Test
    void contrastiveWithoutTheAmateurIsPlainGreedyWhateverTheMask() {
        for (String prompt : PROMPTS) {
            GenerationRequest r = GenerationRequest.of(prompt).withMaxTokens(MAX_TOKENS);
            assertArrayEquals(new Generator(large).generate(r).generatedIds(),
                    LogitMixDecoding.contrastive(large, small, 0.1, 0).generate(r).generatedIds(), prompt);
        }
    }

    @Test
    void theEngineGivesEachRequestItsLoneTokens() {
        List<DecodingStrategy> methods = List.of(LogitMixDecoding.contrastive(large, small, 0.1, 0.5),
                LogitMixDecoding.proxyTuning(large, medium, small, 1), LogitMixDecoding.contextAware(large, CONTEXT, 0.5),
                LogitMixDecoding.guidance(large, "", 2), new Generator(large));
        MixChecks.assertTogetherAsAlone(large, methods, MixChecks.requests(PROMPTS, 10, 8, SamplingParams.greedy().withTemperature(0.8f)));
        for (LanguageModel m : List.of(large, medium, small)) {
            assertEquals(0, m.kvCache().usedBlocks(), m.directory() + " kept KV blocks");
        }
    }

    @Test
    void passesPerTokenCountEachModel() {
        GenerationResult r = LogitMixDecoding.proxyTuning(large, medium, small, 1)
                .generate(GenerationRequest.of("ROMEO:").withMaxTokens(10).withEosTokenIds(List.of()));
        assertEquals(10, r.generatedIds().length);
        assertEquals(10, r.decodeStats().targetForwardPasses(), "the prompt, then a pass per token after the first");
        assertEquals(20, r.decodeStats().draftForwardPasses(), "the tuned and the base model's");
        assertEquals("proxy-tune", r.decodeStats().method());
    }

    /** A negative prompt 8 tokens short of the context: the generation ends when that view is full, not past it. */
    public static String negativePromptNearTheContext(LanguageModel model) {
        int max = model.config().maxContext();
        StringBuilder text = new StringBuilder();
        while (new Generator(model).promptIds(GenerationRequest.of(text + "a ")).length <= max - 8) {
            text.append("a ");
        }
        return text.toString();
    }

    @Test
    void aViewThatFillsItsContextEndsTheGeneration() {
        // Room for both sequences: the default cache holds one context.
        try (LanguageModel roomy = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withKvTokens(2304))) {
            String negative = negativePromptNearTheContext(roomy);
            int room = roomy.config().maxContext() - ids(roomy, negative).length;
            GenerationResult r = LogitMixDecoding.guidance(roomy, negative, 1.5)
                    .generate(GenerationRequest.of("ROMEO:").withMaxTokens(100).withEosTokenIds(List.of()));
            assertEquals(dev.tandem.decoding.FinishReason.CONTEXT_FULL, r.finishReason());
            assertEquals(room, r.generatedIds().length, "the negative view fed every token it had room for");
            assertEquals(0, roomy.kvCache().usedBlocks());
        }
    }

    @Test
    void badInputIsOneSentence() throws Exception {
        try (LanguageModel other = ModelLoader.load(TestModels.model("bard-dlm"), ModelLoader.Options.defaults().withBackend(large.backend()))) {
            TandemException e = assertThrows(TandemException.class, () -> LogitMixDecoding.contrastive(large, other, 0.1, 0.5));
            assertTrue(e.getMessage().contains("vocabulary of 2049 tokens") && e.getMessage().contains("amateur"), e.getMessage());
        }
        assertEquals("--alpha must be in [0, 1], but was 1.5.",
                assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.contrastive(large, small, 1.5, 0.5)).getMessage());
        assertEquals("--beta must be a number from 0 to 1e6, but was -1.0.",
                assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.contrastive(large, small, 0.1, -1)).getMessage());
        assertEquals("--context must not be empty.",
                assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.contextAware(large, "", 0.5)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.guidance(large, "x", Double.NaN));
        String longContext = "word ".repeat(large.config().maxContext());
        TandemException tooLong = assertThrows(TandemException.class,
                () -> LogitMixDecoding.contextAware(large, longContext, 0.5).generate(GenerationRequest.of("ROMEO:")));
        assertTrue(tooLong.getMessage().contains("more than the model's context"), tooLong.getMessage());
    }
}
