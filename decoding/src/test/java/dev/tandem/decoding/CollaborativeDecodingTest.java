package dev.tandem.decoding;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.decoding.CollaborativeDecoding.Collaboration;
import dev.tandem.decoding.CollaborativeDecoding.Rule;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code collab} equals a naive application of its routing rule (both models re-run from scratch on the
 * whole context at every step), and its extremes equal plain greedy decoding of either model.
 */
class CollaborativeDecodingTest {
    static final int MAX_TOKENS = 32;
    static LanguageModel large;
    static LanguageModel small;
    static List<String> prompts;

    @BeforeAll
    static void load() throws IOException {
        large = ModelLoader.load(TestModels.model("bard-l"));
        small = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(large.backend()));
        prompts = new ArrayList<>();
        JsonNode golden = new ObjectMapper().readTree(TestModels.model("bard-l").resolve("golden.json").toFile());
        for (JsonNode c : golden.get("cases")) {
            prompts.add(c.get("prompt").asText());
        }
    }

    @AfterAll
    static void close() {
        small.close();
        large.close();
    }

    static GenerationRequest request(String prompt) {
        return GenerationRequest.of(prompt).withMaxTokens(MAX_TOKENS);
    }

    /** Logits after {@code context[0, length)}, from a fresh sequence prefilled with all of it. */
    static float[] freshLogits(LanguageModel model, int[] context, int length) {
        try (KvSequence seq = model.newSequence()) {
            return model.forward(Batch.of(Batch.Entry.continuation(seq, Arrays.copyOf(context, length)))).lastLogits(0);
        }
    }

    /** The rule written out plainly: softmax at temperature 1, confidence, argmax of the chosen model. */
    static double naiveConfidence(Rule rule, float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double total = 0;
        double[] p = new double[logits.length];
        for (int t = 0; t < logits.length; t++) {
            p[t] = Math.exp(logits[t] - max);
            total += p[t];
        }
        double[] sorted = new double[p.length];
        for (int t = 0; t < p.length; t++) {
            sorted[t] = p[t] / total;
        }
        Arrays.sort(sorted);
        double first = sorted[sorted.length - 1], second = sorted[sorted.length - 2];
        return rule == Rule.MAX_PROB ? first : first - second;
    }

    /** Checks one configuration on every golden prompt; returns {routed steps, generated tokens}. */
    static long[] assertFollowsRule(Rule rule, double threshold) {
        CollaborativeDecoding collab = new CollaborativeDecoding(small, large, rule, threshold);
        long routedTotal = 0, tokensTotal = 0;
        for (String prompt : prompts) {
            GenerationResult r = collab.generate(request(prompt));
            int[] ids = r.generatedIds();
            int[] promptIds = r.promptIds();
            int[] context = Arrays.copyOf(promptIds, promptIds.length + ids.length);
            long routed = 0, changed = 0;
            for (int i = 0; i < ids.length; i++) {
                int length = promptIds.length + i;
                float[] s = freshLogits(small, context, length);
                int smallToken = Sampler.argmax(s);
                int expected = smallToken;
                if (naiveConfidence(rule, s) < threshold) {
                    routed++;
                    expected = Sampler.argmax(freshLogits(large, context, length));
                    if (expected != smallToken) {
                        changed++;
                    }
                }
                assertEquals(expected, ids[i], rule + " " + threshold + " \"" + prompt + "\" token " + i);
                context[length] = ids[i];
            }
            if (r.finishReason() == FinishReason.MAX_TOKENS) {
                assertEquals(MAX_TOKENS, ids.length);
            } else {
                assertEquals(FinishReason.EOS, r.finishReason());
            }
            DecodeStats stats = r.decodeStats();
            Collaboration c = Collaboration.of(stats);
            assertEquals(routed, c.largeCalls(), "large-model calls");
            assertEquals(changed, c.changed(), "changed tokens");
            assertEquals(ids.length, c.tokens());
            // The small model: one prefill plus one pass per token after the first.
            assertEquals(ids.length, stats.draftForwardPasses());
            assertEquals(routed, stats.targetForwardPasses());
            routedTotal += routed;
            tokensTotal += ids.length;
        }
        return new long[] {routedTotal, tokensTotal};
    }

    @Test
    void maxProbFollowsTheRoutingRule() {
        long[] low = assertFollowsRule(Rule.MAX_PROB, 0.4);
        long[] high = assertFollowsRule(Rule.MAX_PROB, 0.7);
        assertTrue(low[0] <= high[0], "a higher threshold never calls less");
        assertTrue(high[0] > 0 && high[0] < high[1], "some but not all steps routed: " + Arrays.toString(high));
    }

    @Test
    void top2MarginFollowsTheRoutingRule() {
        long[] low = assertFollowsRule(Rule.TOP2_MARGIN, 0.2);
        long[] high = assertFollowsRule(Rule.TOP2_MARGIN, 0.5);
        assertTrue(low[0] <= high[0], "a higher threshold never calls less");
        assertTrue(high[0] > 0 && high[0] < high[1], "some but not all steps routed: " + Arrays.toString(high));
    }

    @Test
    void thresholdZeroIsPlainGreedyOfTheSmallModel() {
        assertSameAs(new Generator(small), new CollaborativeDecoding(small, large, Rule.MAX_PROB, 0), 0);
        assertSameAs(new Generator(small), new CollaborativeDecoding(small, large, Rule.TOP2_MARGIN, 0), 0);
    }

    @Test
    void thresholdAboveOneIsPlainGreedyOfTheLargeModel() {
        assertSameAs(new Generator(large), new CollaborativeDecoding(small, large, Rule.MAX_PROB, 1.01), 1);
    }

    private static void assertSameAs(Generator plain, CollaborativeDecoding collab, double expectedCallFrequency) {
        for (String prompt : prompts) {
            GenerationResult expected = plain.generate(request(prompt).withLogprobs(2));
            StringBuilder streamed = new StringBuilder();
            GenerationResult r = collab.generate(request(prompt).withLogprobs(2), e -> streamed.append(e.textDelta()));
            assertArrayEquals(expected.generatedIds(), r.generatedIds(), prompt);
            assertEquals(expected.text(), r.text());
            assertEquals(r.text(), streamed.toString());
            assertEquals(expected.finishReason(), r.finishReason());
            for (int i = 0; i < r.logprobs().size(); i++) {
                // Logprobs come from whichever model chose the token: here always the same one as plain.
                assertEquals(expected.logprobs().get(i).logprob(), r.logprobs().get(i).logprob());
            }
            Collaboration c = Collaboration.of(r.decodeStats());
            assertEquals(expectedCallFrequency, c.callFrequency());
            if (expectedCallFrequency == 0) {
                assertEquals(0, c.changed());
            }
        }
    }

    @Test
    void samplingIsReproducibleAndAtThresholdAboveOneEqualsSampledLargeModel() {
        SamplingParams sp = SamplingParams.greedy().withTemperature(0.8f).withSeed(7);
        GenerationRequest req = request(prompts.get(0)).withSampling(sp);
        GenerationResult plainLarge = new Generator(large).generate(req);
        GenerationResult allLarge = new CollaborativeDecoding(small, large, Rule.MAX_PROB, 1.01).generate(req);
        assertArrayEquals(plainLarge.generatedIds(), allLarge.generatedIds());
        GenerationResult plainSmall = new Generator(small).generate(req);
        GenerationResult allSmall = new CollaborativeDecoding(small, large, Rule.MAX_PROB, 0).generate(req);
        assertArrayEquals(plainSmall.generatedIds(), allSmall.generatedIds());
        CollaborativeDecoding mixed = new CollaborativeDecoding(small, large, Rule.MAX_PROB, 0.5);
        assertArrayEquals(mixed.generate(req).generatedIds(), mixed.generate(req).generatedIds());
    }

    /**
     * A greedy and a sampled request stepped together with 7 prompt rows a step (the prompts and the large
     * model's first catch-ups go in chunks) give exactly what each gives alone, the same routing included.
     */
    @Test
    void requestsSteppedTogetherGiveWhatEachGivesAlone() {
        CollaborativeDecoding collab = new CollaborativeDecoding(small, large, Rule.MAX_PROB, 0.6);
        GenerationRequest greedy = request("First Citizen:\nBefore we proceed any further, hear me speak.").withLogprobs(2);
        GenerationRequest sampled = request("HAMLET:\nTo be, or not to be, that is the question:")
                .withSampling(SamplingParams.greedy().withTemperature(0.8f).withSeed(7));
        List<GenerationResult> alone = List.of(collab.generate(greedy), collab.generate(sampled));
        List<GenerationResult> together = StepsTogether.results(7, collab.task(greedy), collab.task(sampled));
        for (int i = 0; i < alone.size(); i++) {
            GenerationResult a = alone.get(i), t = together.get(i);
            String where = "request " + i;
            assertTrue(a.promptIds().length > 7, where + ": the prompt is not chunked");
            assertArrayEquals(a.generatedIds(), t.generatedIds(), where);
            assertEquals(a.text(), t.text(), where);
            assertEquals(a.finishReason(), t.finishReason(), where);
            assertEquals(a.logprobs(), t.logprobs(), where);
            Collaboration ca = Collaboration.of(a.decodeStats());
            assertTrue(ca.largeCalls() > 0, where + ": the large model was never called");
            assertEquals(ca, Collaboration.of(t.decodeStats()), where);
            assertTrue(t.decodeStats().targetForwardPasses() > ca.largeCalls(), where + ": no catch-up was chunked");
        }
    }

    @Test
    void rejectsBadSettings() {
        assertThrows(IllegalArgumentException.class, () -> new CollaborativeDecoding(small, large, Rule.MAX_PROB, -0.1));
        assertThrows(IllegalArgumentException.class, () -> new CollaborativeDecoding(small, large, Rule.MAX_PROB, Double.NaN));
        assertEquals(Rule.TOP2_MARGIN, Rule.parse("top2-margin"));
        assertThrows(IllegalArgumentException.class, () -> Rule.parse("entropy"));
    }
}
