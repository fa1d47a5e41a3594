package dev.tandem.decoding.speculative;

import static dev.tandem.decoding.speculative.VerifierStatistics.SEED;
import static dev.tandem.decoding.ChiSquareFit.pValue;
import static dev.tandem.decoding.speculative.VerifierStatistics.draft;
import static dev.tandem.decoding.speculative.VerifierStatistics.draftWithoutReplacement;
import static dev.tandem.decoding.speculative.VerifierStatistics.normalized;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import java.io.IOException;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Exactness of speculative verification (issue 6): the tokens it emits must be distributed exactly as
 * the target's own sampling. Each test runs many independent trials (one request stream per trial) and
 * compares the histogram of a clearly defined output variable with its exact distribution by a chi-square
 * goodness-of-fit test.
 *
 * <p><b>The tested variable.</b> The synthetic "target model" has a distribution that depends only on the
 * absolute position, P(pos) = P_{pos mod 3}, and the drafter's proposal likewise Q(pos) = Q_{pos mod 3}.
 * Sampling token by token from the target therefore gives independent tokens, and the first two emitted
 * tokens have the joint distribution P_0 ⊗ P_1 (64 cells over 8 tokens). A trial runs speculative rounds
 * exactly as a decoder would (draft at the current position, verify, emit the accepted tokens plus
 * {@code next}, continue at the position after them) until at least two tokens were emitted, and records
 * the pair. Testing the pair, not just the first token, also checks the accepted-prefix continuation
 * (the second token comes from an accepted draft, a residual, a bonus draw, or the next round). The
 * 1-token-draft tests and the real-model test record the first emitted token (distribution P_0 / p).
 *
 * <p><b>Significance and power.</b> Every chi-square test in this class (positive and negative controls,
 * {@link #CHI_SQUARE_TESTS} of them) runs at α = {@link VerifierStatistics#FAMILY_ALPHA} / that count
 * (Bonferroni), so the chance that any correct verifier fails by bad luck is at most 0.001. Draw counts
 * come from {@link VerifierStatistics#draws}: a total-variation error of 0.01 is detected with power 0.99.
 * Seeds are logged and fixed; override with {@code -Dtandem.test.seed}.
 */
class StatisticalVerifierTest {

    /** Number of chi-square tests in this class: 11 that must pass, 2 negative controls that must fail. */
    static final int CHI_SQUARE_TESTS = 13;

    static final double ALPHA = VerifierStatistics.FAMILY_ALPHA / CHI_SQUARE_TESTS;

    private static final int V = 8;

    /** The target's distribution at positions ≡ 0, 1, 2 (mod 3). */
    private static final double[][] P = {
        normalized(0.30, 0.20, 0.15, 0.10, 0.08, 0.07, 0.05, 0.05),
        normalized(0.05, 0.06, 0.09, 0.12, 0.14, 0.16, 0.18, 0.20),
        normalized(0.10, 0.25, 0.05, 0.15, 0.05, 0.20, 0.10, 0.10),
    };

    /** A proposal far from the target: mass where the target has little. */
    private static final double[][] Q_FAR = {
        normalized(0.02, 0.03, 0.05, 0.08, 0.12, 0.18, 0.22, 0.30),
        normalized(0.40, 0.25, 0.12, 0.08, 0.06, 0.04, 0.03, 0.02),
        normalized(0.30, 0.02, 0.30, 0.02, 0.30, 0.02, 0.02, 0.02),
    };

    /** A proposal with zeros where the target is positive (so some target tokens only come from residuals). */
    private static final double[][] Q_ZEROS = {
        normalized(0, 0.1, 0, 0.5, 0.25, 0, 0.15, 0),
        normalized(0.5, 0, 0.1, 0, 0, 0.3, 0, 0.1),
        normalized(0, 0, 0.4, 0, 0.3, 0, 0, 0.05),
    };
    // (Each Q_ZEROS row also has a token with q < p, so after a rejection the residual still overlaps the
    // proposal's support and later siblings matter: with p < q on the whole support, every sibling after
    // the first would be rejected for certain and iid / without-replacement verification would coincide.)

    private static final int CHAIN_LENGTH = 3;

    @BeforeAll
    static void logSeed() {
        System.out.println("StatisticalVerifierTest: tandem.test.seed=" + SEED + ", per-test alpha=" + ALPHA);
    }

    // ---------------------------------------------------------------- chain, first emitted token

    @Test
    void chainOneTokenDraftFromFarProposalEmitsTarget() {
        assertFirstTokenFits("chain 1-token, q far", P[0], stream -> {
            int x = draft(Q_FAR[0], stream, 0, 0);
            Verdict v = ChainVerifier.sample(new int[] {x}, new double[][] {P[0], P[1]}, new double[][] {Q_FAR[0]},
                    SEED, stream, 0);
            return v.accepted() == 1 ? x : v.next();
        });
    }

    @Test
    void chainOneTokenDraftFromProposalWithZerosEmitsTarget() {
        assertFirstTokenFits("chain 1-token, q with zeros", P[0], stream -> {
            int x = draft(Q_ZEROS[0], stream, 0, 0);
            Verdict v = ChainVerifier.sample(new int[] {x}, new double[][] {P[0], P[1]},
                    new double[][] {Q_ZEROS[0]}, SEED, stream, 0);
            return v.accepted() == 1 ? x : v.next();
        });
    }

    // ---------------------------------------------------------------- chain, first two emitted tokens

    @Test
    void chainFromFarProposalEmitsTargetPairs() {
        assertFirstPairFits("chain of " + CHAIN_LENGTH + ", q far", (stream, base, round) -> chainRound(Q_FAR, false, stream, base, round));
    }

    @Test
    void chainFromProposalWithZerosEmitsTargetPairs() {
        assertFirstPairFits("chain of " + CHAIN_LENGTH + ", q with zeros",
                (stream, base, round) -> chainRound(Q_ZEROS, false, stream, base, round));
    }

    @Test
    void chainFromDeterministicDrafterEmitsTargetPairs() {
        // q == null: the drafter proposes argmax Q_FAR(pos), a fixed token per position.
        assertFirstPairFits("chain of " + CHAIN_LENGTH + ", deterministic drafter (q == null)",
                (stream, base, round) -> chainRound(Q_FAR, true, stream, base, round));
    }

    // ---------------------------------------------------------------- trees, first two emitted tokens

    @Test
    void treeIidFromFarProposalEmitsTargetPairs() {
        assertFirstPairFits("tree iid, q far", (stream, base, round) -> treeRound(Q_FAR, false, false, stream, base, round));
    }

    @Test
    void treeIidFromProposalWithZerosEmitsTargetPairs() {
        assertFirstPairFits("tree iid, q with zeros",
                (stream, base, round) -> treeRound(Q_ZEROS, false, false, stream, base, round));
    }

    @Test
    void treeWithoutReplacementFromFarProposalEmitsTargetPairs() {
        assertFirstPairFits("tree without replacement, q far",
                (stream, base, round) -> treeRound(Q_FAR, true, true, stream, base, round));
    }

    @Test
    void treeWithoutReplacementFromProposalWithZerosEmitsTargetPairs() {
        assertFirstPairFits("tree without replacement, q with zeros",
                (stream, base, round) -> treeRound(Q_ZEROS, true, true, stream, base, round));
    }

    @Test
    void treeFromDeterministicDrafterEmitsTargetPairs() {
        // q == null: each node's children are the top tokens of Q_FAR at their position (3 below the root,
        // 2 below each of those), fixed rather than drawn; both tree methods must be exact for them.
        assertFirstPairFits("tree, deterministic drafter (q == null), sampleIid in round 1, sampleWithoutReplacement after",
                (stream, base, round) -> deterministicTreeRound(stream, base, round % 2 == 0));
    }

    // ---------------------------------------------------------------- a real target / draft pair

    @Test
    void chainWithBardSDraftingForBardLEmitsBardLDistribution() throws IOException {
        // Next-token distributions after bard-l's first golden prompt followed by the first 3 tokens of its
        // greedy path (a fixed choice, not tuned), both restricted by top-k 20 at temperature 1; where the draft
        // model's top 20 differs from the target's, q has zeros where p > 0 and vice versa (logged).
        JsonNode golden = new ObjectMapper().readTree(TestModels.model("bard-l").resolve("golden.json").toFile());
        JsonNode c = golden.get("cases").get(0);
        int[] promptIds = ints(c.get("prompt_ids"));
        int[] greedy = ints(c.get("greedy_ids"));
        int[] context = Arrays.copyOf(promptIds, promptIds.length + 3);
        System.arraycopy(greedy, 0, context, promptIds.length, 3);
        SamplingParams topK20 = new SamplingParams(1f, 20, 1f, 0f, 1f, SEED);
        double[] p = nextTokenDistribution("bard-l", context, topK20);
        double[] q = nextTokenDistribution("bard-s", context, topK20);
        int onlyTarget = 0;
        double overlap = 0;
        for (int t = 0; t < p.length; t++) {
            onlyTarget += p[t] > 0 && q[t] == 0 ? 1 : 0;
            overlap += Math.min(p[t], q[t]);
        }
        System.out.printf("bard-l/bard-s top-20: %d target tokens outside the draft's top 20, smallest p %.3g,"
                + " expected acceptance Σ min(p, q) = %.3f%n", onlyTarget, VerifierStatistics.minPositive(p), overlap);
        assertFirstTokenFits("bard-l target, bard-s draft, top-k 20", p, stream -> {
            int x = draft(q, stream, 0, 0);
            Verdict v = ChainVerifier.sample(new int[] {x}, new double[][] {p, p}, new double[][] {q}, SEED, stream, 0);
            return v.accepted() == 1 ? x : v.next();
        });
    }

    // ---------------------------------------------------------------- negative controls

    @Test
    void negativeControlResamplingFromTargetInsteadOfResidualIsDetected() {
        // The classic bug: after a rejection, draw the correction from p instead of norm(max(p − q, 0)).
        // Then P(out = y) = min(p, q)(y) + (1 − Σ min(p, q)) · p(y) ≠ p(y).
        double pValue = firstTokenPValue("WRONG: residual replaced by p", P[0], stream -> {
            int x = draft(Q_FAR[0], stream, 0, 0);
            double u = dev.tandem.runtime.rng.CounterRng.uniform(SEED, stream, 0, dev.tandem.runtime.rng.RngPurpose.ACCEPT, 0);
            if (u <= P[0][x] / Q_FAR[0][x]) {
                return x;
            }
            double r = dev.tandem.runtime.rng.CounterRng.uniform(SEED, stream, 0, dev.tandem.runtime.rng.RngPurpose.RESIDUAL, 0);
            return ChainVerifier.inverseCdf(P[0], r);
        });
        assertTrue(pValue < ALPHA, "the wrong verifier passed: p=" + pValue + ", seed=" + SEED);
    }

    @Test
    void negativeControlIidVerificationOfChildrenDrawnWithoutReplacementIsDetected() {
        // sampleIid assumes each child was drawn from the node's full q; children drawn without
        // replacement come from q with earlier siblings removed, so its acceptance ratios are wrong: the
        // reason sampleWithoutReplacement exists.
        double pValue = firstPairPValue("WRONG: iid verification of without-replacement drafts",
                (stream, base, round) -> treeRound(Q_FAR, true, false, stream, base, round));
        assertTrue(pValue < ALPHA, "the wrong verifier passed: p=" + pValue + ", seed=" + SEED);
    }

    // ---------------------------------------------------------------- the draw-count computation itself

    @Test
    void drawCountsReachThePowerTheyClaim() {
        // Not a goodness-of-fit test (not counted in CHI_SQUARE_TESTS): checks VerifierStatistics.draws.
        for (int cells : new int[] {8, 20, 64}) {
            int df = cells - 1;
            double critical = new org.apache.commons.math3.distribution.ChiSquaredDistribution(df)
                    .inverseCumulativeProbability(1 - ALPHA);
            int n = VerifierStatistics.draws(cells, 0.5 / cells, ALPHA);
            double tv = VerifierStatistics.DETECTABLE_TV;
            double lambda = 4 * n * tv * tv; // worst case at total variation tv
            double power = VerifierStatistics.power(df, lambda, critical);
            assertTrue(power >= VerifierStatistics.POWER, cells + " cells: power " + power);
            // Minimal: one percent fewer draws falls short.
            assertTrue(VerifierStatistics.power(df, 0.99 * lambda, critical) < VerifierStatistics.POWER);
            // λ = 0 is the central distribution: the false-alarm rate is α.
            assertEquals(ALPHA, VerifierStatistics.power(df, 0, critical), 1e-9);
            // Cross-check with Patnaik's approximation χ'²(ν, λ) ≈ ρ·χ²(ν*), ρ = (ν+2λ)/(ν+λ), ν* = (ν+λ)²/(ν+2λ).
            double rho = (df + 2 * lambda) / (df + lambda);
            double nuStar = (df + lambda) * (df + lambda) / (df + 2 * lambda);
            double patnaik = 1 - new org.apache.commons.math3.distribution.ChiSquaredDistribution(nuStar)
                    .cumulativeProbability(critical / rho);
            assertEquals(power, patnaik, 0.01, cells + " cells");
            System.out.printf("%d cells: %d draws, λ = %.1f, exact power %.4f, Patnaik %.4f%n", cells, n, lambda, power,
                    patnaik);
        }
    }

    // ---------------------------------------------------------------- rounds

    /** One speculative round with a chain of CHAIN_LENGTH drafts at absolute position base; returns the emitted tokens. */
    private static int[] chainRound(double[][] proposal, boolean deterministic, long stream, long base, int round) {
        int[] draft = new int[CHAIN_LENGTH];
        double[][] p = new double[CHAIN_LENGTH + 1][];
        double[][] q = deterministic ? null : new double[CHAIN_LENGTH][];
        for (int i = 0; i <= CHAIN_LENGTH; i++) {
            p[i] = P[(int) ((base + i) % 3)];
        }
        for (int i = 0; i < CHAIN_LENGTH; i++) {
            double[] qi = proposal[(int) ((base + i) % 3)];
            if (deterministic) {
                draft[i] = argmax(qi);
            } else {
                q[i] = qi;
                draft[i] = draft(qi, stream, base + i, round * 64 + i);
            }
        }
        Verdict v = ChainVerifier.sample(draft, p, q, SEED, stream, base);
        int[] out = Arrays.copyOf(draft, v.accepted() + 1);
        out[v.accepted()] = v.next();
        return out;
    }

    /**
     * One round with a tree of 3 children below the root, each with 2 children (9 nodes; node c &lt; 3 is a
     * root child, node 3 + 2c + k is child k of node c). Each node's children are drafted from Q(pos of
     * the children), i.i.d. or without replacement, and verified with sampleWithoutReplacement or sampleIid.
     */
    private static int[] treeRound(double[][] proposal, boolean draftWithoutReplacement, boolean verifyWithoutReplacement,
            long stream, long base, int round) {
        int[] tokens = new int[9];
        int[] parents = new int[9];
        double[] q0 = proposal[(int) (base % 3)];
        double[] q1 = proposal[(int) ((base + 1) % 3)];
        int[] rootKids = children(q0, 3, draftWithoutReplacement, stream, base, round * 64);
        for (int c = 0; c < 3; c++) {
            tokens[c] = rootKids[c];
            parents[c] = -1;
            int[] kids = children(q1, 2, draftWithoutReplacement, stream, base + 1, round * 64 + 3 + 2 * c);
            for (int k = 0; k < 2; k++) {
                tokens[3 + 2 * c + k] = kids[k];
                parents[3 + 2 * c + k] = c;
            }
        }
        TokenTree tree = new TokenTree(tokens, parents);
        double[][] p = new double[10][];
        double[][] q = new double[10][];
        for (int row = 0; row < 10; row++) {
            int depth = row == 0 ? 0 : tree.depth(row - 1);
            p[row] = P[(int) ((base + depth) % 3)];
            q[row] = proposal[(int) ((base + depth) % 3)];
        }
        TreeVerdict v = verifyWithoutReplacement
                ? TreeVerifier.sampleWithoutReplacement(tree, p, q, SEED, stream, base)
                : TreeVerifier.sampleIid(tree, p, q, SEED, stream, base);
        int[] path = tree.tokensOf(v.path());
        int[] out = Arrays.copyOf(path, path.length + 1);
        out[path.length] = v.next();
        return out;
    }

    /** As {@link #treeRound} with children = the top tokens of Q_FAR, verified with q == null. */
    private static int[] deterministicTreeRound(long stream, long base, boolean iid) {
        int[] tokens = new int[9];
        int[] parents = new int[9];
        int[] rootKids = top(Q_FAR[(int) (base % 3)], 3);
        int[] kids = top(Q_FAR[(int) ((base + 1) % 3)], 2);
        for (int c = 0; c < 3; c++) {
            tokens[c] = rootKids[c];
            parents[c] = -1;
            for (int k = 0; k < 2; k++) {
                tokens[3 + 2 * c + k] = kids[k];
                parents[3 + 2 * c + k] = c;
            }
        }
        TokenTree tree = new TokenTree(tokens, parents);
        double[][] p = new double[10][];
        for (int row = 0; row < 10; row++) {
            int depth = row == 0 ? 0 : tree.depth(row - 1);
            p[row] = P[(int) ((base + depth) % 3)];
        }
        TreeVerdict v = iid
                ? TreeVerifier.sampleIid(tree, p, null, SEED, stream, base)
                : TreeVerifier.sampleWithoutReplacement(tree, p, null, SEED, stream, base);
        int[] path = tree.tokensOf(v.path());
        int[] out = Arrays.copyOf(path, path.length + 1);
        out[path.length] = v.next();
        return out;
    }

    /** The {@code count} most probable tokens of q, most probable first (ties by lower id). */
    private static int[] top(double[] q, int count) {
        Integer[] ids = new Integer[q.length];
        for (int t = 0; t < ids.length; t++) {
            ids[t] = t;
        }
        Arrays.sort(ids, (a, b) -> q[a] != q[b] ? Double.compare(q[b], q[a]) : Integer.compare(a, b));
        int[] out = new int[count];
        for (int k = 0; k < count; k++) {
            out[k] = ids[k];
        }
        return out;
    }

    private static int[] children(double[] q, int count, boolean withoutReplacement, long stream, long position, int index) {
        if (withoutReplacement) {
            return draftWithoutReplacement(q, count, stream, position, index);
        }
        int[] out = new int[count];
        for (int k = 0; k < count; k++) {
            out[k] = draft(q, stream, position, index + k);
        }
        return out;
    }

    // ---------------------------------------------------------------- harness

    interface FirstToken {
        int emit(long stream);
    }

    interface Round {
        int[] emit(long stream, long base, int round);
    }

    private static void assertFirstTokenFits(String what, double[] p, FirstToken trial) {
        double pValue = firstTokenPValue(what, p, trial);
        assertTrue(pValue > ALPHA, what + ": chi-square p=" + pValue + " <= " + ALPHA + ", seed=" + SEED);
    }

    private static double firstTokenPValue(String what, double[] p, FirstToken trial) {
        int n = VerifierStatistics.draws(VerifierStatistics.support(p), VerifierStatistics.minPositive(p), ALPHA);
        long[] counts = new long[p.length];
        for (int s = 0; s < n; s++) {
            counts[trial.emit(s)]++;
        }
        double pValue = pValue(p, counts);
        System.out.printf("%s: %d draws over %d cells, p-value %.4g (seed %d)%n", what, n,
                VerifierStatistics.support(p), pValue, SEED);
        return pValue;
    }

    private static void assertFirstPairFits(String what, Round round) {
        double pValue = firstPairPValue(what, round);
        assertTrue(pValue > ALPHA, what + ": chi-square p=" + pValue + " <= " + ALPHA + ", seed=" + SEED);
    }

    /** Runs rounds from position 0 until two tokens are out; tests the pair against P_0 ⊗ P_1. */
    private static double firstPairPValue(String what, Round round) {
        double[] joint = VerifierStatistics.outer(P[0], P[1]);
        int cells = VerifierStatistics.support(joint);
        int n = VerifierStatistics.draws(cells, VerifierStatistics.minPositive(joint), ALPHA);
        long[] counts = new long[joint.length];
        for (int s = 0; s < n; s++) {
            int[] first = new int[2];
            int emitted = 0;
            for (int r = 0; emitted < 2; r++) {
                int[] out = round.emit(s, emitted, r);
                for (int i = 0; i < out.length && emitted < 2; i++) {
                    first[emitted++] = out[i];
                }
            }
            counts[first[0] * V + first[1]]++;
        }
        double pValue = pValue(joint, counts);
        System.out.printf("%s: %d draws over %d cells, p-value %.4g (seed %d)%n", what, n, cells, pValue, SEED);
        return pValue;
    }

    private static int argmax(double[] q) {
        int best = 0;
        for (int t = 1; t < q.length; t++) {
            if (q[t] > q[best]) {
                best = t;
            }
        }
        return best;
    }

    private static double[] nextTokenDistribution(String model, int[] context, SamplingParams params) {
        try (LanguageModel m = ModelLoader.load(TestModels.model(model)); var seq = m.newSequence()) {
            float[] logits = m.forward(Batch.of(Batch.Entry.continuation(seq, context))).lastLogits(0);
            return Sampler.distribution(logits, params, context, context.length);
        }
    }

    private static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }
}
