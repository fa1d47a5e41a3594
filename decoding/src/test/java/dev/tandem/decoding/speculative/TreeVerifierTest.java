package dev.tandem.decoding.speculative;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Deterministic behaviour of {@link TokenTree} and {@link TreeVerifier}; exactness is in {@link StatisticalVerifierTest}. */
class TreeVerifierTest {

    private static final long SEED = VerifierStatistics.SEED;

    private static float[] peaked(int top) {
        float[] l = {0.1f, -0.4f, 0.3f, 0.0f, -1.0f, 0.2f, 0.05f, -0.2f};
        l[top] = 3f;
        return l;
    }

    /*
     * root ─┬─ n0 (5) ─┬─ n2 (1) ── n5 (6)
     *       │          └─ n3 (4) ── n6 (2)
     *       └─ n1 (3) ──── n4 (4)
     */
    private static final TokenTree TREE = new TokenTree(new int[] {5, 3, 1, 4, 4, 6, 2}, new int[] {-1, -1, 0, 0, 1, 2, 3});

    @Test
    void greedyFollowsTheTargetsArgmaxPathDownTheTree() {
        // argmax: root → 5 (n0), after n0 → 4 (n3), after n3 → 2 (n6), after n6 → 7 (bonus).
        float[][] target = new float[8][];
        for (int r = 0; r < 8; r++) {
            target[r] = peaked(0);
        }
        target[0] = peaked(5);
        target[1] = peaked(4); // after n0
        target[4] = peaked(2); // after n3
        target[7] = peaked(7); // after n6
        TreeVerdict v = TreeVerifier.greedy(TREE, target);
        assertArrayEquals(new int[] {0, 3, 6}, v.path());
        assertEquals(7, v.next());
        assertArrayEquals(new int[] {5, 4, 2}, TREE.tokensOf(v.path()));
    }

    @Test
    void greedyStopsWhereNoChildHoldsTheArgmax() {
        float[][] target = new float[8][];
        for (int r = 0; r < 8; r++) {
            target[r] = peaked(0);
        }
        target[0] = peaked(3); // n1
        target[2] = peaked(6); // after n1: its only child holds 4
        assertEquals(new TreeVerdict(new int[] {1}, 6), TreeVerifier.greedy(TREE, target));
        target[0] = peaked(7); // no root child holds 7
        assertEquals(new TreeVerdict(new int[0], 7), TreeVerifier.greedy(TREE, target));
    }

    @Test
    void greedyOnAChainAgreesWithChainVerifier() {
        SplittableRandom random = new SplittableRandom(SEED);
        for (int trial = 0; trial < 500; trial++) {
            int n = random.nextInt(5);
            int[] draft = new int[n];
            float[][] target = new float[n + 1][];
            for (int i = 0; i <= n; i++) {
                target[i] = peaked(random.nextInt(8));
                if (i < n) {
                    draft[i] = random.nextInt(3) == 0 ? random.nextInt(8) : argmax(target[i]);
                }
            }
            Verdict chain = ChainVerifier.greedy(draft, target);
            TreeVerdict tree = TreeVerifier.greedy(TokenTree.chain(draft), target);
            assertEquals(chain.accepted(), tree.accepted());
            assertEquals(chain.next(), tree.next());
        }
    }

    @Test
    void samplingOnAChainAgreesWithChainVerifierDrawForDraw() {
        // On a chain both tree methods reduce to Leviathan et al.'s test with the same RNG keys, so the
        // verdicts must be identical, including the residual draw and the Sampler-compatible bonus draw.
        SplittableRandom random = new SplittableRandom(SEED);
        for (int trial = 0; trial < 3000; trial++) {
            int n = random.nextInt(5);
            int v = 2 + random.nextInt(6);
            double[][] p = new double[n + 1][];
            double[][] q = new double[n + 1][];
            int[] draft = new int[n];
            for (int i = 0; i <= n; i++) {
                p[i] = randomDistribution(random, v);
                q[i] = randomDistribution(random, v);
                if (i < n) {
                    draft[i] = VerifierStatistics.draft(q[i], trial, i, 0);
                }
            }
            long position = random.nextLong(1L << 31);
            boolean deterministic = trial % 3 == 0; // q == null: the drafted tokens are fixed proposals
            Verdict chain = ChainVerifier.sample(
                    draft, p, deterministic ? null : java.util.Arrays.copyOf(q, n), SEED, trial, position);
            TokenTree tree = TokenTree.chain(draft);
            double[][] treeQ = deterministic ? null : q;
            for (TreeVerdict t : new TreeVerdict[] {
                    TreeVerifier.sampleIid(tree, p, treeQ, SEED, trial, position),
                    TreeVerifier.sampleWithoutReplacement(tree, p, treeQ, SEED, trial, position)}) {
                assertEquals(chain.accepted(), t.accepted(), "trial " + trial);
                assertEquals(chain.next(), t.next(), "trial " + trial);
                for (int i = 0; i < t.accepted(); i++) {
                    assertEquals(i, t.path()[i]);
                }
            }
        }
    }

    @Test
    void withoutReplacementRejectsARepeatedSiblingTokenThatIidAccepts() {
        TokenTree twins = new TokenTree(new int[] {1, 1}, new int[] {-1, -1});
        double[] p = {0.5, 0.5};
        double[] q = {0.5, 0.5};
        double[][] ps = {p, p, p};
        double[][] qs = {q, q, q};
        TreeVerifier.sampleIid(twins, ps, qs, SEED, 0, 0);
        assertThrows(IllegalArgumentException.class, () -> {
            // The first twin is rejected only sometimes; find a position where it is, so the second is tried.
            for (long position = 0; position < 1000; position++) {
                TreeVerifier.sampleWithoutReplacement(twins, new double[][] {{0.9, 0.1}, p, p}, qs, SEED, 0, position);
            }
        });
    }

    @Test
    void aChildTheProposalCouldNotHaveDrawnIsACallerError() {
        TokenTree one = new TokenTree(new int[] {0}, new int[] {-1});
        double[] p = {0.5, 0.5};
        assertThrows(IllegalArgumentException.class,
                () -> TreeVerifier.sampleIid(one, new double[][] {p, p}, new double[][] {{0.0, 1.0}, p}, SEED, 0, 0));
    }

    @Test
    void shapesAreValidated() {
        double[] p = {0.5, 0.5};
        assertThrows(IllegalArgumentException.class, () -> new TokenTree(new int[] {1, 2}, new int[] {-1, 1}));
        assertThrows(IllegalArgumentException.class, () -> new TokenTree(new int[] {1, 2}, new int[] {-1, -2}));
        assertThrows(IllegalArgumentException.class, () -> new TokenTree(new int[] {1}, new int[] {-1, 0}));
        assertThrows(IllegalArgumentException.class, () -> new TokenTree(new int[] {-1}, new int[] {-1}));
        TokenTree one = new TokenTree(new int[] {1}, new int[] {-1});
        assertThrows(IllegalArgumentException.class, () -> TreeVerifier.sampleIid(one, new double[][] {p}, new double[][] {p}, SEED, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> TreeVerifier.greedy(one, new float[][] {{1f, 0f}}));
        assertArrayEquals(new int[] {2, 3}, TREE.children(0));
        assertArrayEquals(new int[] {0, 1}, TREE.children(-1));
        assertEquals(3, TREE.depth(5));
    }

    private static double[] randomDistribution(SplittableRandom random, int v) {
        double[] w = new double[v];
        for (int t = 0; t < v; t++) {
            w[t] = random.nextInt(4) == 0 ? 0 : random.nextDouble();
        }
        w[random.nextInt(v)] += 0.1;
        return VerifierStatistics.normalized(w);
    }

    private static int argmax(float[] l) {
        int best = 0;
        for (int t = 1; t < l.length; t++) {
            if (l[t] > l[best]) {
                best = t;
            }
        }
        return best;
    }
}
