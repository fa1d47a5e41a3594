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
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.HostHead;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 16's acceptance for layer contrast: DoLa ({@link LayerContrastDecoding}) on bard-l (6 decoder layers) and LOL
 * ({@link LogitMixDecoding#lowerLayerContrast}) with bard-l as the expert and bard-s (2 layers) or bard-m (4) as the
 * amateur, each against a direct computation from separate forward passes: the hidden states of each layer
 * ({@link Batch.Entry#withHiddenStates}) through the checkpoint's final norm and LM head on the host in double
 * ({@link HostHead}), the formula in double; rows within 1e-5 and greedy tokens equal. Then the edges, the Engine and
 * bad input.
 */
class LayerContrastDecodingTest {
    static final List<String> PROMPTS = List.of("ROMEO:", "First Citizen:\nWe are accounted poor citizens", "\n");
    static final int MAX_TOKENS = 20;
    static LanguageModel large;
    static LanguageModel medium;
    static LanguageModel small;
    static HostHead largeHead;
    static HostHead mediumHead;
    static HostHead smallHead;

    @BeforeAll
    static void load() {
        large = ModelLoader.load(TestModels.model("bard-l"));
        medium = ModelLoader.load(TestModels.model("bard-m"), ModelLoader.Options.defaults().withBackend(large.backend()));
        small = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(large.backend()));
        largeHead = HostHead.of(TestModels.model("bard-l"));
        mediumHead = HostHead.of(TestModels.model("bard-m"));
        smallHead = HostHead.of(TestModels.model("bard-s"));
    }

    @AfterAll
    static void close() {
        smallHead.close();
        mediumHead.close();
        largeHead.close();
        small.close();
        medium.close();
        large.close();
    }

    /** One position of a model's own passes: its ordinary next-token logits and, per asked layer, the layer's logits in double. */
    record Position(float[] logits, double[][] layerLogits) {
    }

    /**
     * A model's next-token outputs at each generated position from its own passes (the prompt, then one token a pass):
     * the ordinary logits, and the hidden state after each of {@code layers} (0-based decoder layers) through the
     * checkpoint's norm and head on the host.
     */
    static List<Position> separatePasses(LanguageModel model, HostHead head, int[] prompt, int[] generated, int... layers) {
        int[] hidden = new int[layers.length];
        for (int i = 0; i < layers.length; i++) {
            hidden[i] = layers[i] + 1; // hidden-state layer l + 1 is the output of decoder layer l
        }
        List<Position> out = new ArrayList<>();
        try (KvSequence kv = model.newSequence()) {
            for (int pos = 0; pos < generated.length; pos++) {
                Batch.Entry entry = pos == 0 ? Batch.Entry.continuation(kv, prompt) : Batch.Entry.continuation(kv, generated[pos - 1]);
                ForwardResult r = model.forward(Batch.of(entry.withHiddenStates(hidden, entry.rows() - 1)));
                double[][] layerLogits = new double[layers.length][];
                for (int i = 0; i < layers.length; i++) {
                    layerLogits[i] = head.logits(r.hiddenState(0, hidden[i], 0));
                }
                out.add(new Position(r.lastLogits(0), layerLogits));
            }
        }
        return out;
    }

    private static int[] ids(LanguageModel m, String text) {
        return new Generator(m).promptIds(GenerationRequest.of(text));
    }

    /** Whether t is in the α-plausible set of the logits the task itself mixes (the model's own floats: no flips at the edge). */
    private static boolean plausible(float[] logits, int t, double alpha) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        return (double) logits[t] - max >= Math.log(alpha);
    }

    private static double[] logSoftmax(double[] z) {
        double max = Arrays.stream(z).max().orElseThrow();
        double sum = 0;
        for (double v : z) {
            sum += Math.exp(v - max);
        }
        double lse = max + Math.log(sum);
        double[] out = new double[z.length];
        for (int t = 0; t < z.length; t++) {
            out[t] = z[t] - lse;
        }
        return out;
    }

    /**
     * DoLa's layer distance as HF computes it: with M = (p_a + p_b)/2, ½·(KL(M ‖ p_a) + KL(M ‖ p_b)) — HF's
     * {@code F.kl_div(log p, M)} is KL(M ‖ p), so this is not the textbook JSD ½·(KL(p_a ‖ M) + KL(p_b ‖ M)), and the
     * two can rank layers differently. Summed over the vocabulary (HF averages: the same ranking).
     */
    private static double divergence(double[] a, double[] b) {
        double[] la = logSoftmax(a), lb = logSoftmax(b);
        double sum = 0;
        for (int t = 0; t < a.length; t++) {
            double m = (Math.exp(la[t]) + Math.exp(lb[t])) / 2;
            if (m > 0) {
                sum += 0.5 * m * (Math.log(m) - la[t]) + 0.5 * m * (Math.log(m) - lb[t]);
            }
        }
        return sum;
    }

    /** The greedy token of a reference row after the repetition penalty over {@code context}, lowest id on ties. */
    private static int greedy(double[] scores, int[] context, int contextLength, double penalty) {
        double[] s = scores.clone();
        BitSet seen = new BitSet();
        for (int i = 0; i < contextLength; i++) {
            int t = context[i];
            if (!seen.get(t)) {
                seen.set(t);
                s[t] = s[t] < 0 ? s[t] * penalty : s[t] / penalty;
            }
        }
        int best = 0;
        for (int t = 1; t < s.length; t++) {
            best = s[t] > s[best] ? t : best;
        }
        return best;
    }

    /** A reference score row at one position from the views' own passes, in double. */
    @FunctionalInterface
    interface Formula {
        double[] of(List<Position> views);
    }

    /**
     * Runs {@code method} greedily (traced) on each prompt with {@code request}'s settings, recomputes each position's row
     * from the views' separate passes with {@code formula}, and requires the rows to agree within 1e-5 (the same tokens
     * at −∞) and each token to be the reference's greedy one under the repetition penalty {@code penalty}.
     */
    private static void checkAgainstSeparatePasses(String what, java.util.function.Function<java.util.function.Consumer<float[]>, DecodingStrategy> traced,
                                                   List<LanguageModel> models, List<HostHead> heads, int[][] layers,
                                                   GenerationRequest settings, double penalty, Formula formula) {
        for (String prompt : PROMPTS) {
            List<float[]> rows = new ArrayList<>();
            GenerationRequest request = new GenerationRequest(prompt, null, settings.maxTokens(), settings.sampling(), settings.stop(),
                    settings.eosTokenIds(), settings.logprobs(), settings.streamId());
            GenerationResult r = traced.apply(rows::add).generate(request);
            int[] generated = r.generatedIds();
            assertEquals(generated.length, rows.size(), "one score row per token");
            assertTrue(generated.length > 1, what + " \"" + prompt + "\" generated " + generated.length + " tokens");
            List<List<Position>> views = new ArrayList<>();
            for (int v = 0; v < models.size(); v++) {
                views.add(separatePasses(models.get(v), heads.get(v), ids(models.get(v), prompt), generated, layers[v]));
            }
            int[] context = Arrays.copyOf(r.promptIds(), r.promptIds().length + generated.length);
            System.arraycopy(generated, 0, context, r.promptIds().length, generated.length);
            for (int pos = 0; pos < generated.length; pos++) {
                List<Position> at = new ArrayList<>();
                for (List<Position> view : views) {
                    at.add(view.get(pos));
                }
                double[] expected = formula.of(at);
                float[] got = rows.get(pos);
                for (int t = 0; t < expected.length; t++) {
                    String where = what + " \"" + prompt + "\" position " + pos + " token " + t;
                    if (expected[t] == Double.NEGATIVE_INFINITY) {
                        assertEquals(Float.NEGATIVE_INFINITY, got[t], where + " is outside the plausible set");
                    } else {
                        assertEquals(expected[t], got[t], 1e-5 * Math.max(1, Math.abs(expected[t])), where);
                    }
                }
                assertEquals(greedy(expected, context, r.promptIds().length + pos, penalty), generated[pos],
                        what + " \"" + prompt + "\" position " + pos + ": the greedy token");
            }
        }
    }

    /** DoLa's reference: the candidate farthest from the final layer ({@link #divergence}), then log p_F − log p_L on the final layer's α-set. */
    private static Formula dolaReference(int[] candidates, double alpha) {
        return views -> {
            Position p = views.getFirst();
            double[] fin = p.layerLogits()[candidates.length]; // the final layer, asked for after the candidates
            int best = 0;
            for (int j = 1; j < candidates.length; j++) {
                if (divergence(fin, p.layerLogits()[j]) > divergence(fin, p.layerLogits()[best])) {
                    best = j;
                }
            }
            double[] lsF = logSoftmax(fin), lsL = logSoftmax(p.layerLogits()[best]);
            double[] out = new double[fin.length];
            for (int t = 0; t < out.length; t++) {
                out[t] = plausible(p.logits(), t, alpha) ? lsF[t] - lsL[t] : Double.NEGATIVE_INFINITY;
            }
            return out;
        };
    }

    private static int[] with(int[] layers, int last) {
        int[] out = Arrays.copyOf(layers, layers.length + 1);
        out[layers.length] = last;
        return out;
    }

    @Test
    void dolaEqualsItsFormulaOnSeparatePasses() {
        int finalLayer = large.config().numLayers() - 1;
        GenerationRequest greedy = GenerationRequest.of("").withMaxTokens(MAX_TOKENS);
        for (int[] candidates : new int[][] {{0, 2, 4}, {3}, {4, 1}}) {
            // The default repetition penalty (1.2) where the request sets none.
            checkAgainstSeparatePasses("dola " + Arrays.toString(candidates), trace -> LayerContrastDecoding.dola(large, candidates).traced(trace),
                    List.of(large), List.of(largeHead), new int[][] {with(candidates, finalLayer)}, greedy,
                    LayerContrastDecoding.DEFAULT_REPETITION_PENALTY, dolaReference(candidates, LayerContrastDecoding.DEFAULT_ALPHA));
        }
        int[] candidates = {0, 2, 4};
        // The request's own penalty wins; a strategy penalty of 1 turns the default off; another α.
        checkAgainstSeparatePasses("dola, the request's penalty", trace -> LayerContrastDecoding.dola(large, candidates).traced(trace),
                List.of(large), List.of(largeHead), new int[][] {with(candidates, finalLayer)},
                greedy.withSampling(SamplingParams.greedy().withRepetitionPenalty(1.5f)), 1.5f, dolaReference(candidates, 0.1));
        checkAgainstSeparatePasses("dola, no penalty, α 0.3", trace -> LayerContrastDecoding.dola(large, candidates, 0.3, 1f).traced(trace),
                List.of(large), List.of(largeHead), new int[][] {with(candidates, finalLayer)}, greedy, 1, dolaReference(candidates, 0.3));
    }

    @Test
    void theDefaultRepetitionPenaltyIsTheRequestsWhereItSetsNone() {
        for (String prompt : PROMPTS) {
            GenerationRequest plain = GenerationRequest.of(prompt).withMaxTokens(MAX_TOKENS);
            GenerationRequest penalized = plain.withSampling(SamplingParams.greedy().withRepetitionPenalty(1.2f));
            assertEquals(LayerContrastDecoding.dola(large, 0, 2, 4).generate(plain).text(),
                    LayerContrastDecoding.dola(large, new int[] {0, 2, 4}, 0.1, 1f).generate(penalized).text(), prompt);
        }
        assertEquals(1.2f, LayerContrastDecoding.dola(large, 1).repetitionPenalty());
    }

    @Test
    void dolaWithEveryTokenPlausibleScoresTheWholeVocabulary() {
        List<float[]> rows = new ArrayList<>();
        LayerContrastDecoding.dola(large, new int[] {0}, 0, 1f).traced(rows::add).generate(GenerationRequest.of("ROMEO:").withMaxTokens(3));
        for (float[] row : rows) {
            for (float v : row) {
                assertTrue(Float.isFinite(v), "α = 0 masks nothing");
            }
        }
    }

    /** LOL's reference: (1+β)·E_F + λ(1+β)·E_L − β·A_F − λβ·A_L on the expert's final-layer α-set. */
    private static Formula lolReference(double alpha, double beta, double lambda) {
        return views -> {
            Position e = views.get(0), a = views.get(1);
            double[] out = new double[e.logits().length];
            for (int t = 0; t < out.length; t++) {
                double cdFinal = (1 + beta) * e.layerLogits()[0][t] - beta * a.layerLogits()[0][t];
                double cdLower = (1 + beta) * e.layerLogits()[1][t] - beta * a.layerLogits()[1][t];
                out[t] = plausible(e.logits(), t, alpha) ? cdFinal + lambda * cdLower : Double.NEGATIVE_INFINITY;
            }
            return out;
        };
    }

    @Test
    void lolEqualsItsFormulaOnSeparatePasses() {
        GenerationRequest greedy = GenerationRequest.of("").withMaxTokens(MAX_TOKENS);
        int expertFinal = large.config().numLayers() - 1;
        // bard-s has 2 decoder layers: layer 0 is the only one below its final layer.
        checkAgainstSeparatePasses("lol bard-s layer 0", trace -> LogitMixDecoding.lowerLayerContrast(large, small, 0, 0.1, 0.5, 1).traced(trace),
                List.of(large, small), List.of(largeHead, smallHead),
                new int[][] {{expertFinal, 0}, {small.config().numLayers() - 1, 0}}, greedy, 1, lolReference(0.1, 0.5, 1));
        checkAgainstSeparatePasses("lol bard-m layer 2", trace -> LogitMixDecoding.lowerLayerContrast(large, medium, 2, 0.1, 0.5, 0.7).traced(trace),
                List.of(large, medium), List.of(largeHead, mediumHead),
                new int[][] {{expertFinal, 2}, {medium.config().numLayers() - 1, 2}}, greedy, 1, lolReference(0.1, 0.5, 0.7));
    }

    @Test
    void lolWithoutItsLowerLayerIsContrastiveDecodingBitForBit() {
        for (String prompt : PROMPTS) {
            GenerationRequest r = GenerationRequest.of(prompt).withMaxTokens(MAX_TOKENS).withLogprobs(2);
            List<float[]> lol = new ArrayList<>(), cd = new ArrayList<>();
            GenerationResult a = LogitMixDecoding.lowerLayerContrast(large, small, 0, 0.1, 0.5, 0).traced(lol::add).generate(r);
            GenerationResult b = LogitMixDecoding.contrastive(large, small, 0.1, 0.5).traced(cd::add).generate(r);
            assertArrayEquals(b.generatedIds(), a.generatedIds(), prompt);
            assertEquals(b.logprobs(), a.logprobs(), prompt);
            for (int i = 0; i < cd.size(); i++) {
                assertArrayEquals(cd.get(i), lol.get(i), prompt + " position " + i);
            }
        }
    }

    @Test
    void theEngineGivesEachRequestItsLoneTokensAndFreesEveryBlock() {
        List<DecodingStrategy> methods = List.of(LayerContrastDecoding.dola(large, 0, 2, 4), new Generator(large),
                LogitMixDecoding.lowerLayerContrast(large, small, 0, 0.1, 0.5, 1), LayerContrastDecoding.dola(large, 3),
                new Generator(large));
        MixChecks.assertTogetherAsAlone(large, methods, MixChecks.requests(PROMPTS, 10, 6, SamplingParams.greedy().withTemperature(0.8f).withTopK(40)));
        for (LanguageModel m : List.of(large, small)) {
            assertEquals(0, m.kvCache().usedBlocks(), m.directory() + " kept KV blocks");
        }
    }

    @Test
    void dolaRunsOnePassAToken() {
        GenerationResult r = LayerContrastDecoding.dola(large, 0, 2, 4)
                .generate(GenerationRequest.of("ROMEO:").withMaxTokens(10).withEosTokenIds(List.of()));
        assertEquals(10, r.generatedIds().length);
        assertEquals(10, r.decodeStats().targetForwardPasses(), "the prompt, then a pass per token after the first");
        assertEquals(0, r.decodeStats().draftForwardPasses());
        assertEquals("dola", r.decodeStats().method());
    }

    @Test
    void badInputIsOneSentence() throws Exception {
        String l = large.directory().toString();
        assertEquals("--layers holds layer 6, past the 6 decoder layers of " + l + " (0 to 5).",
                assertThrows(IllegalArgumentException.class, () -> LayerContrastDecoding.dola(large, 0, 6)).getMessage());
        assertEquals("--layers holds layer 5, the final layer of " + l + ", which DoLa contrasts the candidates with; they must "
                        + "be lower layers, 0 to 4.",
                assertThrows(IllegalArgumentException.class, () -> LayerContrastDecoding.dola(large, 5)).getMessage());
        assertEquals("--layers names layer 2 twice.",
                assertThrows(IllegalArgumentException.class, () -> LayerContrastDecoding.dola(large, 2, 0, 2)).getMessage());
        assertEquals("--layers must name at least one layer.",
                assertThrows(IllegalArgumentException.class, () -> LayerContrastDecoding.dola(large)).getMessage());
        assertEquals("--layers holds -1, but decoder layers count from 0.",
                assertThrows(IllegalArgumentException.class, () -> LayerContrastDecoding.dola(large, -1)).getMessage());
        assertEquals("--alpha must be in [0, 1], but was 1.5.",
                assertThrows(IllegalArgumentException.class, () -> LayerContrastDecoding.dola(large, new int[] {1}, 1.5, 1.2f)).getMessage());
        assertEquals("--repetition-penalty must be a finite number > 0 (1 turns it off), but was 0.0.",
                assertThrows(IllegalArgumentException.class, () -> LayerContrastDecoding.dola(large, new int[] {1}, 0.1, 0f)).getMessage());

        String s = small.directory().toString();
        assertEquals("--layer 1 is not below the final layer of the amateur " + s + " (2 decoder layers, 0 to 1); LOL contrasts "
                        + "a lower layer of both models, so --layer must be 0 to 0.",
                assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.lowerLayerContrast(large, small, 1, 0.1, 0.5, 1))
                        .getMessage());
        assertEquals("--layer 5 is not below the final layer of the expert " + l + " (6 decoder layers, 0 to 5); LOL contrasts "
                        + "a lower layer of both models, so --layer must be 0 to 2.",
                assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.lowerLayerContrast(large, medium, 5, 0.1, 0.5, 1))
                        .getMessage());
        assertEquals("--layer must be 0 or more (decoder layers count from 0), but was -1.",
                assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.lowerLayerContrast(large, small, -1, 0.1, 0.5, 1))
                        .getMessage());
        assertEquals("--lambda must be a number from 0 to 1e6, but was -0.5.",
                assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.lowerLayerContrast(large, small, 0, 0.1, 0.5, -0.5))
                        .getMessage());
        assertEquals("--beta must be a number from 0 to 1e6, but was -1.0.",
                assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.lowerLayerContrast(large, small, 0, 0.1, -1, 1))
                        .getMessage());
        try (LanguageModel other = ModelLoader.load(TestModels.model("bard-dlm"), ModelLoader.Options.defaults().withBackend(large.backend()))) {
            TandemException e = assertThrows(TandemException.class, () -> LogitMixDecoding.lowerLayerContrast(large, other, 0, 0.1, 0.5, 1));
            assertTrue(e.getMessage().contains("vocabulary of 2049 tokens") && e.getMessage().contains("amateur")
                    && e.getMessage().contains("lol"), e.getMessage());
        }
    }
}
