package dev.tandem.decoding.sampling;

import dev.tandem.decoding.ChiSquareFit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Goodness of fit of {@link Sampler} draws against the processed distribution, computed here from the
 * definitions and independently of {@link LogitsProcessors} and {@link Sampler#distribution}.
 */
class SamplerStatisticsTest {

    /** Fixed by default so failures reproduce; override with -Dtandem.test.seed=... to explore. */
    private static final long SEED = Long.getLong("tandem.test.seed", 0x7A4DE3L);

    private static final int DRAWS = 40_000;
    private static final double SIGNIFICANCE = 0.001;
    private static final long STREAM = 11;

    private static final float[] LOGITS = {
        1.2f, -0.3f, 2.5f, 0.7f, -1.8f, 0.0f, 1.9f, -0.9f, 0.4f, 3.1f, -2.6f, 1.0f
    };
    private static final int[] NO_CONTEXT = {};

    @BeforeAll
    static void printSeed() {
        System.out.println("SamplerStatisticsTest: tandem.test.seed=" + SEED);
    }

    private static SamplingParams params() {
        return new SamplingParams(1f, 0, 1f, 0f, 1f, SEED);
    }

    @Test
    void temperatureSamplingMatchesScaledSoftmax() {
        assertDrawsFit("temperature 0.7", params().withTemperature(0.7f), NO_CONTEXT);
    }

    @Test
    void topKSamplingMatchesSoftmaxOverTheKLargest() {
        assertDrawsFit("top-k 5", params().withTopK(5), NO_CONTEXT);
    }

    @Test
    void topPSamplingMatchesSoftmaxOverTheNucleus() {
        assertDrawsFit("top-p 0.8", params().withTopP(0.8f), NO_CONTEXT);
    }

    @Test
    void minPSamplingMatchesSoftmaxOverTokensAboveScaledMax() {
        assertDrawsFit("min-p 0.1", params().withMinP(0.1f), NO_CONTEXT);
    }

    @Test
    void repetitionPenaltySamplingMatchesSoftmaxOfPenalizedLogits() {
        // Tokens 2 and 9 have positive logits, 1 and 4 negative; 9 appears twice but counts once.
        assertDrawsFit("repetition penalty 1.8", params().withRepetitionPenalty(1.8f), new int[] {2, 9, 9, 1, 4});
    }

    @Test
    void combinedProcessingSamplingMatchesReferenceInHuggingFaceOrder() {
        SamplingParams p = new SamplingParams(0.8f, 8, 0.9f, 0.17f, 1.3f, SEED);
        assertDrawsFit("all processors", p, new int[] {9, 3, 10, 3});
    }

    @Test
    void chiSquareRejectsDrawsFromAWrongTemperature() {
        // The bug to catch: temperature applied as a multiplication instead of a division.
        float temperature = 0.7f;
        float[] wrong = LOGITS.clone();
        for (int t = 0; t < wrong.length; t++) {
            wrong[t] *= temperature;
        }
        long[] observed = draw(wrong, params(), NO_CONTEXT);
        double[] expected = reference(LOGITS, params().withTemperature(temperature), NO_CONTEXT);
        double pValue = ChiSquareFit.pValue(expected, observed);
        assertTrue(pValue < SIGNIFICANCE, "seed=" + SEED + ": a wrong temperature went undetected, p=" + pValue
                + " expected=" + Arrays.toString(expected) + " observed=" + Arrays.toString(observed));
    }

    @Test
    void distributionMatchesIndependentReference() {
        List<SamplingParams> all = List.of(
                params().withTemperature(0.7f), params().withTopK(5), params().withTopP(0.8f),
                params().withMinP(0.1f), params().withRepetitionPenalty(1.8f),
                new SamplingParams(0.8f, 8, 0.9f, 0.17f, 1.3f, SEED));
        int[] context = {2, 9, 9, 1, 4};
        for (SamplingParams p : all) {
            double[] expected = reference(LOGITS, p, context);
            double[] actual = Sampler.distribution(LOGITS, p, context, context.length);
            for (int t = 0; t < expected.length; t++) {
                assertEquals(expected[t], actual[t], 1e-6, "seed=" + SEED + " " + p + " token " + t);
            }
        }
    }

    private static void assertDrawsFit(String what, SamplingParams p, int[] context) {
        double[] expected = reference(LOGITS, p, context);
        long[] observed = draw(LOGITS, p, context);
        String detail = "seed=" + SEED + " " + what + " expected=" + Arrays.toString(expected) + " observed="
                + Arrays.toString(observed);
        for (int t = 0; t < expected.length; t++) {
            if (expected[t] == 0) {
                assertEquals(0, observed[t], "token " + t + " has probability 0 but was drawn; " + detail);
            }
        }
        double pValue = ChiSquareFit.pValue(expected, observed);
        assertTrue(pValue > SIGNIFICANCE, "chi-square p=" + pValue + " <= " + SIGNIFICANCE + "; " + detail);
    }

    /** Counts per token of DRAWS samples at positions 0..DRAWS-1 of one stream. */
    private static long[] draw(float[] logits, SamplingParams p, int[] context) {
        long[] counts = new long[logits.length];
        for (int position = 0; position < DRAWS; position++) {
            counts[Sampler.sample(logits, p, context, context.length, STREAM, position)]++;
        }
        return counts;
    }

    /**
     * The processed distribution from the definitions, in double: penalty, temperature, then top-k
     * (fewer than k strictly larger logits), top-p (mass ranked strictly before t, ties by lower id,
     * is below P), min-p (p_t ≥ m · max p), then softmax.
     */
    static double[] reference(float[] logits, SamplingParams p, int[] context) {
        int v = logits.length;
        double[] l = new double[v];
        for (int t = 0; t < v; t++) {
            l[t] = logits[t];
        }
        Set<Integer> seen = new HashSet<>();
        for (int t : context) {
            if (seen.add(t) && p.repetitionPenalty() != 1f) {
                l[t] = l[t] < 0 ? l[t] * p.repetitionPenalty() : l[t] / p.repetitionPenalty();
            }
        }
        for (int t = 0; t < v; t++) {
            l[t] /= p.temperature();
        }
        boolean[] kept = new boolean[v];
        Arrays.fill(kept, true);
        if (p.topK() > 0) {
            for (int t = 0; t < v; t++) {
                int larger = 0;
                for (int s = 0; s < v; s++) {
                    larger += l[s] > l[t] ? 1 : 0;
                }
                kept[t] = larger < p.topK();
            }
        }
        if (p.topP() < 1f) {
            double[] q = softmax(l, kept);
            boolean[] next = new boolean[v];
            for (int t = 0; t < v; t++) {
                double before = 0;
                for (int s = 0; s < v; s++) {
                    if (q[s] > q[t] || (q[s] == q[t] && s < t)) {
                        before += q[s];
                    }
                }
                next[t] = kept[t] && before < p.topP();
            }
            kept = next;
        }
        if (p.minP() > 0f) {
            double[] q = softmax(l, kept);
            double max = Arrays.stream(q).max().orElseThrow();
            for (int t = 0; t < v; t++) {
                kept[t] &= q[t] >= p.minP() * max;
            }
        }
        return softmax(l, kept);
    }

    private static double[] softmax(double[] l, boolean[] kept) {
        double[] q = new double[l.length];
        double sum = 0;
        for (int t = 0; t < l.length; t++) {
            q[t] = kept[t] ? Math.exp(l[t]) : 0;
            sum += q[t];
        }
        for (int t = 0; t < l.length; t++) {
            q[t] /= sum;
        }
        return q;
    }
}
