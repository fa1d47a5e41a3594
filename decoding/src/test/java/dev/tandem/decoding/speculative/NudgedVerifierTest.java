package dev.tandem.decoding.speculative;

import static dev.tandem.decoding.ChiSquareFit.pValue;
import static dev.tandem.decoding.speculative.VerifierStatistics.SEED;
import static dev.tandem.decoding.speculative.VerifierStatistics.draft;
import static dev.tandem.decoding.speculative.VerifierStatistics.normalized;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * RAPID's nudged verification, {@link ChainVerifier#sampleNudged}: at η = 0 it is exact speculative sampling verdict
 * for verdict, and at η &gt; 0 the first emitted token follows the rule's own distribution,
 * P(x) = q(x)·min(1, p̂(x)/q(x)) + P(reject)·norm(max(p − q, p − p̂, 0))(x), computed here from the formula, not from
 * the verifier's code. Chi-square tests as in {@link StatisticalVerifierTest}: draw counts from
 * {@link VerifierStatistics#draws} (a total-variation error of 0.01 found with power 0.99), Bonferroni over this
 * class's {@link #CHI_SQUARE_TESTS} tests, the seed fixed ({@code -Dtandem.test.seed} overrides it).
 */
class NudgedVerifierTest {

    static final int CHI_SQUARE_TESTS = 4;

    static final double ALPHA = VerifierStatistics.FAMILY_ALPHA / CHI_SQUARE_TESTS;

    private static final double[] P = normalized(0.30, 0.20, 0.15, 0.10, 0.08, 0.07, 0.05, 0.05);

    /** A drafter that disagrees with P, with tokens 0 and 2 (likely under P) under a tenth of its top: outside the mask. */
    private static final double[] Q_FAR = normalized(0.02, 0.30, 0.01, 0.25, 0.20, 0.12, 0.06, 0.04);

    /** A drafter with zeros where P is positive (those tokens come only from the residual). */
    private static final double[] Q_ZEROS = normalized(0.5, 0, 0.1, 0, 0.25, 0.15, 0, 0);

    @Test
    void atEtaZeroEveryVerdictIsExactSpeculativeSamplings() {
        SplittableRandom random = new SplittableRandom(SEED);
        int rejected = 0, allAccepted = 0, deterministic = 0;
        for (int trial = 0; trial < 20_000; trial++) {
            int vocab = 2 + random.nextInt(40);
            int n = random.nextInt(5);
            SamplingParams params = new SamplingParams(0.5f + random.nextFloat(), random.nextInt(3) * 3,
                    random.nextBoolean() ? 1f : 0.9f, 0f, 1f, random.nextLong());
            double[][] p = new double[n + 1][];
            for (int i = 0; i <= n; i++) {
                p[i] = randomDistribution(random, vocab, params);
            }
            boolean oneHot = random.nextInt(4) == 0;
            double[][] q = oneHot ? null : new double[n][];
            int[] chain = new int[n];
            for (int i = 0; i < n; i++) {
                if (!oneHot) {
                    // Sometimes the target's own row: then every token passes.
                    q[i] = random.nextInt(3) == 0 ? p[i] : randomDistribution(random, vocab, params);
                }
                do {
                    chain[i] = random.nextInt(vocab);
                } while (!oneHot && q[i][chain[i]] == 0);
            }
            long seed = random.nextLong(), stream = random.nextLong(), position = random.nextLong(1L << 32);
            Verdict exact = ChainVerifier.sample(chain, p, q, seed, stream, position);
            Verdict nudged = ChainVerifier.sampleNudged(chain, p, q, 0.0, seed, stream, position);
            assertEquals(exact, nudged, "trial " + trial + " (seed " + SEED + ")");
            rejected += exact.accepted() < n ? 1 : 0;
            allAccepted += exact.accepted() == n && n > 0 ? 1 : 0;
            deterministic += oneHot ? 1 : 0;
        }
        // Both ends of a verdict were compared many times: rejections (residual draws) and bonus draws.
        assertTrue(rejected > 2000 && allAccepted > 2000 && deterministic > 2000,
                rejected + " rejections, " + allAccepted + " fully accepted, " + deterministic + " one-hot drafters");
    }

    @Test
    void nudgedByFiveFromAFarDrafterEmitsTheRulesDistribution() {
        assertMaskMatters(Q_FAR, 5);
        assertFirstTokenFollowsTheRule("q far, η = 5", Q_FAR, 5);
    }

    @Test
    void nudgedByTenFromAFarDrafterEmitsTheRulesDistribution() {
        assertMaskMatters(Q_FAR, 10);
        assertFirstTokenFollowsTheRule("q far, η = 10", Q_FAR, 10);
    }

    @Test
    void nudgedByFortyFiveFromAFarDrafterEmitsTheRulesDistribution() {
        // Here p̂ ≥ q on every lifted token, with or without the mask: this one checks the rule, not the mask.
        assertFirstTokenFollowsTheRule("q far, η = 45", Q_FAR, 45);
    }

    @Test
    void nudgedByTenFromADrafterWithZerosEmitsTheRulesDistribution() {
        assertFirstTokenFollowsTheRule("q with zeros, η = 10", Q_ZEROS, 10);
    }

    @Test
    void aNegativeInfiniteOrMissingEtaIsOneSentence() {
        for (double eta : new double[] {-1, Double.NaN, Double.POSITIVE_INFINITY}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ChainVerifier.sampleNudged(
                    new int[] {0}, new double[][] {P, P}, new double[][] {Q_FAR}, eta, SEED, 0, 0));
            assertEquals("--eta (η) must be a finite number of at least 0, but was " + eta + ".", e.getMessage());
        }
    }

    /**
     * A 1-token draft drawn from {@code q} at position 0 of stream s, verified against P nudged by {@code eta}; the
     * emitted token (the draft or the correction) over many streams against {@link #ruleDistribution}. The fixture
     * must move the output away from P by far more than the 0.01 the test detects, or exact speculative sampling
     * would pass too.
     */
    private static void assertFirstTokenFollowsTheRule(String what, double[] q, double eta) {
        double[] expected = ruleDistribution(P, q, eta, true);
        assertTrue(totalVariation(expected, P) > 0.05, what + ": the nudge barely moves P");
        int n = VerifierStatistics.draws(VerifierStatistics.support(expected), VerifierStatistics.minPositive(expected), ALPHA);
        long[] counts = new long[P.length];
        for (int s = 0; s < n; s++) {
            int x = draft(q, s, 0, 0);
            Verdict v = ChainVerifier.sampleNudged(new int[] {x}, new double[][] {P, P}, new double[][] {q}, eta, SEED, s, 0);
            counts[v.accepted() == 1 ? x : v.next()]++;
        }
        double pValue = pValue(expected, counts);
        System.out.printf("%s: %d draws over %d cells, p-value %.4g (seed %d)%n", what, n,
                VerifierStatistics.support(expected), pValue, SEED);
        assertTrue(pValue > ALPHA, what + ": chi-square p=" + pValue + " <= " + ALPHA + ", seed=" + SEED);
    }

    /** The mask m moves the rule's output by more than the test detects, so a rule without it fails the test. */
    private static void assertMaskMatters(double[] q, double eta) {
        double d = totalVariation(ruleDistribution(P, q, eta, true), ruleDistribution(P, q, eta, false));
        assertTrue(d > 0.02, "η = " + eta + ": the mask moves the output by only " + d);
    }

    /**
     * The emitted token's distribution under the nudged rule, from its definition: p̂ = softmax(log p − η·m·(p − q))
     * with m the tokens where q ≥ 0.1·max q (every token when {@code masked} is false), x accepted with probability
     * q(x)·min(1, p̂(x)/q(x)), otherwise a draw from norm(max(p − q, p − p̂, 0)).
     */
    static double[] ruleDistribution(double[] p, double[] q, double eta, boolean masked) {
        int v = p.length;
        double maxQ = 0;
        for (double x : q) {
            maxQ = Math.max(maxQ, x);
        }
        double[] hat = new double[v];
        double total = 0;
        for (int t = 0; t < v; t++) {
            boolean m = !masked || q[t] >= 0.1 * maxQ;
            hat[t] = p[t] * Math.exp(m ? -eta * (p[t] - q[t]) : 0);
            total += hat[t];
        }
        double accepted = 0;
        double[] out = new double[v];
        double[] residual = new double[v];
        double residualTotal = 0;
        for (int t = 0; t < v; t++) {
            hat[t] /= total;
            out[t] = Math.min(q[t], hat[t]);
            accepted += out[t];
            residual[t] = Math.max(0, Math.max(p[t] - q[t], p[t] - hat[t]));
            residualTotal += residual[t];
        }
        for (int t = 0; t < v; t++) {
            out[t] += (1 - accepted) * residual[t] / residualTotal;
        }
        return out;
    }

    private static double totalVariation(double[] a, double[] b) {
        double d = 0;
        for (int t = 0; t < a.length; t++) {
            d += Math.abs(a[t] - b[t]);
        }
        return d / 2;
    }

    /** A processed distribution over {@code vocab} tokens from random logits (zeros where top-k or top-p cut). */
    private static double[] randomDistribution(SplittableRandom random, int vocab, SamplingParams params) {
        float[] logits = new float[vocab];
        for (int t = 0; t < vocab; t++) {
            logits[t] = (float) (random.nextGaussian() * 2);
        }
        return Sampler.distribution(logits, params, new int[0], 0);
    }
}
