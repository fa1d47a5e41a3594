package dev.tandem.decoding.speculative;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.rng.CounterRng;
import dev.tandem.runtime.rng.RngPurpose;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Deterministic behaviour of {@link ChainVerifier}; its exactness is in {@link StatisticalVerifierTest}. */
class ChainVerifierTest {

    private static final long SEED = VerifierStatistics.SEED;

    /** Logits whose argmax is {@code top} (over a vocabulary of 6). */
    private static float[] peaked(int top) {
        float[] l = {0.1f, -0.4f, 0.3f, 0.0f, -1.0f, 0.2f};
        l[top] = 3f;
        return l;
    }

    @Test
    void greedyAcceptsTheWholeDraftOnTheArgmaxPathAndAddsTheBonusToken() {
        Verdict v = ChainVerifier.greedy(new int[] {2, 4, 1}, new float[][] {peaked(2), peaked(4), peaked(1), peaked(5)});
        assertEquals(new Verdict(3, 5), v);
    }

    @Test
    void greedyStopsAtTheFirstMismatchWithTheTargetsToken() {
        Verdict v = ChainVerifier.greedy(new int[] {2, 3, 1}, new float[][] {peaked(2), peaked(4), peaked(1), peaked(5)});
        assertEquals(new Verdict(1, 4), v);
        assertEquals(new Verdict(0, 0), ChainVerifier.greedy(new int[] {2}, new float[][] {peaked(0), peaked(1)}));
    }

    @Test
    void greedyWithAnEmptyDraftIsPlainArgmaxAndTiesGoToTheLowestId() {
        assertEquals(new Verdict(0, 1), ChainVerifier.greedy(new int[0], new float[][] {{0f, 2f, 2f, -1f}}));
    }

    @Test
    void greedyRejectsAMismatchedNumberOfRows() {
        assertThrows(IllegalArgumentException.class, () -> ChainVerifier.greedy(new int[] {1, 2}, new float[][] {peaked(1)}));
    }

    @Test
    void sampleWithAnEmptyDraftDrawsExactlyTheTokenSamplerDraws() {
        // The bonus token must be Sampler.sample's token at that position (same purpose, index, inverse
        // CDF), so speculative decoding with nothing accepted reproduces plain sampling token for token.
        SplittableRandom random = new SplittableRandom(SEED);
        int[] context = {3, 7, 7, 1};
        for (int trial = 0; trial < 2000; trial++) {
            float[] logits = new float[16 + random.nextInt(48)];
            for (int t = 0; t < logits.length; t++) {
                logits[t] = (float) (random.nextGaussian() * 2);
            }
            SamplingParams params = new SamplingParams(0.5f + random.nextFloat(), random.nextInt(3) * 5,
                    random.nextBoolean() ? 1f : 0.9f, 0f, random.nextBoolean() ? 1f : 1.3f, random.nextLong());
            long stream = random.nextLong();
            long position = random.nextLong(1L << 32);
            double[] p = Sampler.distribution(logits, params, context, context.length);
            int expected = Sampler.sample(logits, params, context, context.length, stream, position);
            Verdict v = ChainVerifier.sample(new int[0], new double[][] {p}, new double[0][], params.seed(), stream, position);
            assertEquals(new Verdict(0, expected), v, "trial " + trial + " seed " + SEED);
            assertEquals(v, ChainVerifier.sample(new int[0], new double[][] {p}, null, params.seed(), stream, position));
        }
    }

    @Test
    void bonusTokenAfterAFullyAcceptedDraftIsSamplersTokenAtTheNextPosition() {
        // p == q on the draft rows: acceptance is certain, so the verdict is (n, Sampler's draw at position + n).
        float[] logits = {0.3f, 1.2f, -0.5f, 0.9f, 0.0f};
        SamplingParams params = new SamplingParams(1f, 0, 1f, 0f, 1f, SEED);
        double[] p = Sampler.distribution(logits, params, new int[0], 0);
        for (long position = 0; position < 200; position++) {
            int[] draft = {1, 3};
            Verdict v = ChainVerifier.sample(draft, new double[][] {p, p, p}, new double[][] {p, p}, SEED, 5, position);
            assertEquals(new Verdict(2, Sampler.sample(logits, params, new int[0], 0, 5, position + 2)), v);
        }
    }

    @Test
    void acceptanceUsesTheCounterRngAcceptDrawAtTheDraftTokensPosition() {
        double[] p = {0.25, 0.25, 0.25, 0.25};
        double[] q = {0.0, 0.5, 0.25, 0.25}; // p/q = 1/2 at token 1
        for (long position = 0; position < 300; position++) {
            double u = CounterRng.uniform(SEED, 9, position, RngPurpose.ACCEPT, 0);
            Verdict v = ChainVerifier.sample(new int[] {1}, new double[][] {p, p}, new double[][] {q}, SEED, 9, position);
            assertEquals(u <= 0.5 ? 1 : 0, v.accepted(), "position " + position);
            if (v.accepted() == 0) {
                // The residual max(p − q, 0) is all on token 0.
                assertEquals(0, v.next());
            }
        }
    }

    /**
     * The open-ended verdicts (PEARL's post-verify) are {@link ChainVerifier#sample}'s, draw for draw, except
     * that a fully accepted chain returns null instead of drawing a bonus token; the same for greedy.
     */
    @Test
    void openEndedVerificationIsTheClosedOneWithoutTheBonus() {
        SplittableRandom random = new SplittableRandom(SEED);
        int vocab = 5;
        int fullyAccepted = 0, rejected = 0;
        for (int trial = 0; trial < 2000; trial++) {
            int n = 1 + random.nextInt(4);
            double[][] p = new double[n + 1][], q = new double[n][];
            float[][] logits = new float[n + 1][];
            int[] draft = new int[n];
            for (int i = 0; i <= n; i++) {
                p[i] = randomDistribution(random, vocab);
                logits[i] = new float[vocab];
                for (int t = 0; t < vocab; t++) {
                    logits[i][t] = (float) Math.log(p[i][t]);
                }
            }
            for (int i = 0; i < n; i++) {
                q[i] = randomDistribution(random, vocab);
                draft[i] = random.nextDouble() < 0.5 ? Sampler.argmax(logits[i]) : random.nextInt(vocab);
            }
            Verdict closed = ChainVerifier.sample(draft, p, q, SEED, 3, trial);
            Verdict open = ChainVerifier.sampleOpenEnded(draft, java.util.Arrays.copyOf(p, n), q, SEED, 3, trial);
            if (closed.accepted() == n) {
                assertEquals(null, open, "trial " + trial);
                fullyAccepted++;
            } else {
                assertEquals(closed, open, "trial " + trial);
                rejected++;
            }
            Verdict greedyClosed = ChainVerifier.greedy(draft, logits);
            Verdict greedyOpen = ChainVerifier.greedyOpenEnded(draft, logits);
            assertEquals(greedyClosed.accepted() == n ? null : greedyClosed, greedyOpen, "greedy trial " + trial);
        }
        assertTrue(fullyAccepted > 50 && rejected > 50, fullyAccepted + " fully accepted, " + rejected + " rejected");
    }

    /** A distribution over {@code vocab} tokens with every entry positive. */
    private static double[] randomDistribution(SplittableRandom random, int vocab) {
        double[] d = new double[vocab];
        double total = 0;
        for (int t = 0; t < vocab; t++) {
            d[t] = 0.05 + random.nextDouble();
            total += d[t];
        }
        for (int t = 0; t < vocab; t++) {
            d[t] /= total;
        }
        return d;
    }

    @Test
    void deterministicDrafterRejectsATokenTheTargetCannotProduce() {
        double[] p = {0.5, 0.0, 0.5};
        for (long position = 0; position < 100; position++) {
            Verdict v = ChainVerifier.sample(new int[] {1, 0}, new double[][] {p, p, p}, null, SEED, 1, position);
            assertEquals(0, v.accepted());
            assertTrue(v.next() == 0 || v.next() == 2);
        }
    }

    @Test
    void zeroResidualFallsBackToTheTargetWithoutNaN() {
        // p ≤ q everywhere with p ≠ q cannot happen for distributions, but rounding can leave an all-zero
        // residual; the draw then comes from p itself.
        double[] p = {0.2, 0.3, 0.5};
        for (double u = 0; u < 1; u += 0.01) {
            int t = ChainVerifier.drawOrFallBack(new double[] {0, 0, 0}, p, u);
            assertEquals(u < 0.2 ? 0 : u < 0.5 ? 1 : 2, t, "u=" + u);
        }
    }

    @Test
    void aDraftTokenTheProposalGaveProbabilityZeroIsACallerError() {
        double[] p = {0.5, 0.5};
        assertThrows(IllegalArgumentException.class, () -> ChainVerifier.sample(
                new int[] {1}, new double[][] {p, p}, new double[][] {{1.0, 0.0}}, SEED, 0, 0));
    }

    @Test
    void sampleRejectsMismatchedShapes() {
        double[] p = {0.5, 0.5};
        assertThrows(IllegalArgumentException.class,
                () -> ChainVerifier.sample(new int[] {1}, new double[][] {p}, new double[][] {p}, SEED, 0, 0));
        assertThrows(IllegalArgumentException.class,
                () -> ChainVerifier.sample(new int[] {1}, new double[][] {p, p}, new double[][] {p, p}, SEED, 0, 0));
        assertThrows(IllegalArgumentException.class,
                () -> ChainVerifier.sample(new int[] {2}, new double[][] {p, p}, null, SEED, 0, 0));
        assertThrows(IllegalArgumentException.class,
                () -> ChainVerifier.sample(new int[] {1}, new double[][] {p, {1.0}}, null, SEED, 0, 0));
    }
}
