package dev.tandem.decoding.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class LogitsProcessorsTest {

    private static final float X = Float.NEGATIVE_INFINITY; // a removed token
    private static final int[] NO_CONTEXT = {};

    /** Logits whose softmax is exactly proportional to {@code probabilities}. */
    private static float[] logitsOf(double... probabilities) {
        float[] l = new float[probabilities.length];
        for (int t = 0; t < l.length; t++) {
            l[t] = (float) Math.log(probabilities[t]);
        }
        return l;
    }

    private static float[] keep(float[] logits, int... kept) {
        float[] expected = new float[logits.length];
        Arrays.fill(expected, X);
        for (int t : kept) {
            expected[t] = logits[t];
        }
        return expected;
    }

    @Test
    void temperatureDividesEveryLogit() {
        float[] l = {1f, -2f, 0.5f, X};
        LogitsProcessors.temperature(l, 0.5f);
        assertArrayEquals(new float[] {2f, -4f, 1f, X}, l);
    }

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOncePerToken() {
        float[] l = {2f, -2f, 1f, 0f, 3f};
        LogitsProcessors.repetitionPenalty(l, new int[] {0, 1, 0, 0, 3, 1, 99}, 6, 2f); // 99 lies past the length
        assertArrayEquals(new float[] {1f, -4f, 1f, 0f, 3f}, l);
    }

    @Test
    void repetitionPenaltyBelowOneRewardsContextTokens() {
        float[] l = {2f, -2f, 1f};
        LogitsProcessors.repetitionPenalty(l, new int[] {0, 1}, 2, 0.5f);
        assertArrayEquals(new float[] {4f, -1f, 1f}, l);
    }

    @Test
    void repetitionPenaltyRejectsTokensOutsideTheVocabulary() {
        assertThrows(IllegalArgumentException.class,
                () -> LogitsProcessors.repetitionPenalty(new float[3], new int[] {3}, 1, 1.2f));
        assertThrows(IllegalArgumentException.class,
                () -> LogitsProcessors.repetitionPenalty(new float[3], new int[] {-1}, 1, 1.2f));
        assertThrows(IllegalArgumentException.class,
                () -> LogitsProcessors.repetitionPenalty(new float[3], new int[] {0}, 2, 1.2f));
    }

    @Test
    void topKKeepsTheKLargestLogits() {
        float[] l = {1f, 3f, 2f, 5f, 4f};
        LogitsProcessors.topK(l, 2);
        assertArrayEquals(new float[] {X, X, X, 5f, 4f}, l);
    }

    @Test
    void topKLargerThanVocabularyOrFiniteCountKeepsEverything() {
        float[] l = {1f, 3f, 2f};
        LogitsProcessors.topK(l, 10);
        assertArrayEquals(new float[] {1f, 3f, 2f}, l);
        float[] masked = {X, 1f, X, 0f};
        LogitsProcessors.topK(masked, 3);
        assertArrayEquals(new float[] {X, 1f, X, 0f}, masked);
    }

    @Test
    void topKKeepsEveryLogitTiedWithTheKth() {
        // Hugging Face's rule: remove l < k-th largest, so ties at the cut all stay (3 tokens for k = 2).
        float[] l = {2f, 3f, 1f, 2f};
        LogitsProcessors.topK(l, 2);
        assertArrayEquals(new float[] {2f, 3f, X, 2f}, l);
    }

    @Test
    void topPKeepsSmallestSetReachingTheMass() {
        float[] base = logitsOf(0.15, 0.5, 0.05, 0.3);
        float[] l = base.clone();
        LogitsProcessors.topP(l, 0.7f); // 0.5 < 0.7, 0.5 + 0.3 ≥ 0.7
        assertArrayEquals(keep(base, 1, 3), l);
        l = base.clone();
        LogitsProcessors.topP(l, 0.85f); // 0.8 < 0.85, 0.95 ≥ 0.85
        assertArrayEquals(keep(base, 1, 3, 0), l);
        l = base.clone();
        LogitsProcessors.topP(l, 0.4f);
        assertArrayEquals(keep(base, 1), l);
    }

    @Test
    void topPOneKeepsEverythingAndTinyTopPKeepsTheTopToken() {
        float[] base = logitsOf(0.15, 0.5, 0.05, 0.3);
        float[] l = base.clone();
        LogitsProcessors.topP(l, 1f);
        assertArrayEquals(base, l);
        l = base.clone();
        LogitsProcessors.topP(l, Float.MIN_VALUE);
        assertArrayEquals(keep(base, 1), l);
    }

    @Test
    void topPBreaksTiesByLowerTokenIdFirst() {
        float[] l = {1f, 1f, 1f, 1f}; // 0.25 each: mass 0.5 needs exactly two of them
        LogitsProcessors.topP(l, 0.5f);
        assertArrayEquals(new float[] {1f, 1f, X, X}, l);
        float[] m = {0f, 2f, 0f, 2f}; // ids 1 and 3 tie at 0.44 each; one of them reaches 0.3
        LogitsProcessors.topP(m, 0.3f);
        assertArrayEquals(new float[] {X, 2f, X, X}, m);
    }

    @Test
    void topPRenormalizesOverTokensLeftByTopK() {
        // After top-k 2 the mass is 0.625 / 0.375: top-p 0.6 keeps one token, though 0.5 < 0.6 before top-k.
        float[] l = logitsOf(0.5, 0.3, 0.2);
        LogitsProcessors.topK(l, 2);
        LogitsProcessors.topP(l, 0.6f);
        assertArrayEquals(keep(logitsOf(0.5, 0.3, 0.2), 0), l);
    }

    @Test
    void minPKeepsTokensAboveScaledTopProbability() {
        float[] base = logitsOf(0.15, 0.5, 0.05, 0.3);
        float[] l = base.clone();
        LogitsProcessors.minP(l, 0.2f); // threshold 0.1
        assertArrayEquals(keep(base, 0, 1, 3), l);
        l = base.clone();
        LogitsProcessors.minP(l, 0f);
        assertArrayEquals(base, l);
    }

    @Test
    void everyProcessorLeavesASingleFiniteTokenAlone() {
        float[] only = {X, X, 0.7f, X};
        float[] l = only.clone();
        LogitsProcessors.topK(l, 1);
        LogitsProcessors.topP(l, 0.01f);
        LogitsProcessors.minP(l, 0.99f);
        LogitsProcessors.temperature(l, 0.7f);
        LogitsProcessors.repetitionPenalty(l, new int[] {2}, 1, 0.7f);
        assertArrayEquals(new float[] {X, X, 1f / 0.7f, X}, l);
    }

    @Test
    void applyRunsTemperatureBeforeTopP() {
        // At T = 1 token 0 alone holds 0.7 ≥ 0.6; at T = 4 the distribution flattens and needs two tokens.
        float[] base = logitsOf(0.7, 0.2, 0.1);
        float[] l = base.clone();
        LogitsProcessors.apply(l, new SamplingParams(4f, 0, 0.6f, 0f, 1f, 0L), NO_CONTEXT, 0);
        assertArrayEquals(new float[] {base[0] / 4f, base[1] / 4f, X}, l);
    }

    @Test
    void applyRunsTopKBeforeTopPBeforeMinP() {
        // Top-k 2 first renormalizes to 0.625 / 0.375, so top-p 0.6 then keeps one token (two the other way round).
        float[] k = logitsOf(0.5, 0.3, 0.2);
        LogitsProcessors.apply(k, new SamplingParams(1f, 2, 0.6f, 0f, 1f, 0L), NO_CONTEXT, 0);
        assertArrayEquals(keep(logitsOf(0.5, 0.3, 0.2), 0), k);
        // Top-p 0.6 first keeps 0.5 + 0.3; min-p 0.3 (cut 0.15) keeps both. Min-p first would leave one token.
        float[] m = logitsOf(0.5, 0.3, 0.1, 0.1);
        LogitsProcessors.apply(m, new SamplingParams(1f, 0, 0.6f, 0.3f, 1f, 0L), NO_CONTEXT, 0);
        assertArrayEquals(keep(logitsOf(0.5, 0.3, 0.1, 0.1), 0, 1), m);
    }

    @Test
    void applyRunsRepetitionPenaltyFirstAndOnlyThatWhenGreedy() {
        float[] l = {2f, 1.5f, -1f};
        LogitsProcessors.apply(l, SamplingParams.greedy().withRepetitionPenalty(2f).withTopK(1), new int[] {0, 2}, 2);
        assertArrayEquals(new float[] {1f, 1.5f, -2f}, l);
        float[] s = {2f, 1.5f, -1f};
        LogitsProcessors.apply(s, new SamplingParams(1f, 1, 1f, 0f, 2f, 0L), new int[] {0}, 1);
        assertArrayEquals(new float[] {X, 1.5f, X}, s); // penalty made token 1 the top-1
    }

    @Test
    void processorsRejectArgumentsOutsideTheirRange() {
        assertThrows(IllegalArgumentException.class, () -> LogitsProcessors.temperature(new float[1], 0f));
        assertThrows(IllegalArgumentException.class, () -> LogitsProcessors.topK(new float[1], 0));
        assertThrows(IllegalArgumentException.class, () -> LogitsProcessors.topP(new float[1], 0f));
        assertThrows(IllegalArgumentException.class, () -> LogitsProcessors.minP(new float[1], 1f));
        assertThrows(IllegalArgumentException.class,
                () -> LogitsProcessors.repetitionPenalty(new float[1], NO_CONTEXT, 0, 0f));
    }
}
