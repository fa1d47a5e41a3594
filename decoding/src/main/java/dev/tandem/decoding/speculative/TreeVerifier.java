package dev.tandem.decoding.speculative;

import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.runtime.rng.CounterRng;
import dev.tandem.runtime.rng.RngPurpose;
import java.util.Arrays;
import java.util.function.IntFunction;
import java.util.function.IntUnaryOperator;

/**
 * Verification of a drafted {@link TokenTree} ({@code METHODS.md}, "Token-tree verification"). Rows of
 * {@code target}, {@code p} and {@code q} are indexed as in {@link TokenTree}: row 0 = after the root,
 * row j + 1 = after node j. {@code position} is the absolute position a child of the root occupies, so the
 * token chosen below a node of depth d occupies position + d. Rows may be given as arrays or as functions of
 * the row index; a function is asked only for the rows the walk visits (the root's, then each accepted node's),
 * each once, in that order, so a caller can compute them lazily (the LM head, {@link LazyLogits}).
 *
 * <p>Random draws at a node of depth d use {@link CounterRng} at position + d with purpose
 * {@link RngPurpose#ACCEPT} and index k for the acceptance test of the node's k-th child, purpose
 * {@link RngPurpose#RESIDUAL} index 0 for a draw after every child was rejected, and purpose
 * {@link RngPurpose#SAMPLE} index 0 for the bonus draw below a leaf (as {@link Sampler#sample} draws
 * there). A verification visits each depth at most once, so all of its draws are independent. For a
 * chain, {@link #sampleIid} and {@link #sampleWithoutReplacement} agree draw for draw with
 * {@link ChainVerifier#sample} (q given or null).
 *
 * <p>Why both sampling methods are exact: at a node with target p', a child x drawn from a proposal q_k
 * is accepted with probability min(1, p'(x)/q_k(x)); given a rejection, the token still to be chosen must
 * follow norm(max(p' − q_k, 0)), whatever x was. The rest of the procedure (more children, or a final
 * draw) emits exactly its current target by induction on the number of children left, for ANY proposal
 * q_{k+1} the next child was actually drawn from, provided the verifier uses that proposal: q for i.i.d.
 * children, q minus the earlier siblings for children drawn without replacement, one-hot at the child for
 * a deterministic drafter. Using the wrong proposal (e.g. {@link #sampleIid} on children drawn without
 * replacement) is not exact; StatisticalVerifierTest shows it.
 */
public final class TreeVerifier {

    private TreeVerifier() {}

    /**
     * Greedy verification: from the root, repeatedly take the target's argmax ({@link Sampler#argmax},
     * lowest id on ties) of the current row and descend into the first child (in index order) holding that
     * token; stop where no child does. next = that argmax. {@code target} has size + 1 rows of raw logits.
     */
    public static TreeVerdict greedy(TokenTree tree, float[][] target) {
        requireRows("target", target.length, tree);
        return greedy(tree, row -> target[row]);
    }

    /** As {@link #greedy(TokenTree, float[][])}, with {@code target.apply(row)} asked only for the rows visited. */
    public static TreeVerdict greedy(TokenTree tree, IntFunction<float[]> target) {
        return greedyFromArgmax(tree, row -> Sampler.argmax(target.apply(row)));
    }

    /**
     * As {@link #greedy(TokenTree, float[][])}, from each row's greedy token: {@code argmax.applyAsInt(row)} is the
     * argmax of that row's raw logits (asked only for the rows visited), e.g. the ids a backend's argmax sent back.
     */
    public static TreeVerdict greedyFromArgmax(TokenTree tree, IntUnaryOperator argmax) {
        int[] path = new int[maxDepth(tree)];
        int accepted = 0;
        int node = -1;
        while (true) {
            int best = argmax.applyAsInt(node + 1);
            int child = -1;
            for (int c : tree.childrenView(node)) {
                if (tree.token(c) == best) {
                    child = c;
                    break;
                }
            }
            if (child < 0) {
                return new TreeVerdict(Arrays.copyOf(path, accepted), best);
            }
            path[accepted++] = child;
            node = child;
        }
    }

    /**
     * SpecInfer multi-draft verification (Miao et al. 2024), exact when each node's children were drawn
     * i.i.d. from that node's q row. At each node, with p' = p[row]: try the children in order; child x is
     * accepted with probability min(1, p'(x)/q(x)); on rejection p' ← norm(max(p' − q, 0)); if every
     * child is rejected, next is drawn from p'. A leaf's next is drawn from its p row.
     *
     * @param q per row, the distribution that row's children were drawn from (rows of leaves may be null);
     *     or {@code q == null} for a deterministic drafter, whose every child is its own one-hot proposal
     *     (child x accepted with probability p'(x); on rejection p' loses x and is renormalised), which is
     *     exact for any fixed set of children
     * @throws IllegalArgumentException on mismatched shapes or a drafted child with q(x) == 0
     */
    public static TreeVerdict sampleIid(
            TokenTree tree, double[][] p, double[][] q, long seed, long stream, long position) {
        requireShapes(tree, p, q);
        return verify(tree, rows(p), rows(q), seed, stream, position, false);
    }

    /**
     * As {@link #sampleIid(TokenTree, double[][], double[][], long, long, long)}, with {@code p.apply(row)} and
     * {@code q.apply(row)} asked only for the rows visited ({@code q == null}: a deterministic drafter).
     */
    public static TreeVerdict sampleIid(
            TokenTree tree, IntFunction<double[]> p, IntFunction<double[]> q, long seed, long stream, long position) {
        return verify(tree, p, q, seed, stream, position, false);
    }

    /**
     * Recursive rejection sampling (Jeon et al. 2024, "Recursive Speculative Decoding"), exact when each
     * node's children were drawn WITHOUT replacement from that node's q row (child k from q with children
     * 0..k−1 removed and renormalised). As {@link #sampleIid}, except that after each rejected child x
     * the proposal also loses x: q ← norm(q with q(x) = 0), and p' ← norm(max(p' − q, 0)) uses the
     * proposal the rejected child was drawn from.
     *
     * <p>{@code q == null} (a deterministic drafter) verifies exactly as {@link #sampleIid} with
     * {@code q == null}: removing a rejected one-hot proposal changes nothing further.
     *
     * @throws IllegalArgumentException on mismatched shapes, or a child that could not have been drawn
     *     (q(x) == 0 after removing its earlier siblings, e.g. a repeated token)
     */
    public static TreeVerdict sampleWithoutReplacement(
            TokenTree tree, double[][] p, double[][] q, long seed, long stream, long position) {
        requireShapes(tree, p, q);
        return verify(tree, rows(p), rows(q), seed, stream, position, true);
    }

    /**
     * As {@link #sampleWithoutReplacement(TokenTree, double[][], double[][], long, long, long)}, with
     * {@code p.apply(row)} and {@code q.apply(row)} asked only for the rows visited.
     */
    public static TreeVerdict sampleWithoutReplacement(
            TokenTree tree, IntFunction<double[]> p, IntFunction<double[]> q, long seed, long stream, long position) {
        return verify(tree, p, q, seed, stream, position, true);
    }

    /** Every row of the arrays checked up front (a function's rows are checked as the walk visits them). */
    private static void requireShapes(TokenTree tree, double[][] p, double[][] q) {
        requireRows("p", p.length, tree);
        if (q != null) {
            requireRows("q", q.length, tree);
        }
        for (int row = 0; row < p.length; row++) {
            ChainVerifier.requireLength("p[" + row + "]", p[row], p[0].length);
        }
    }

    private static IntFunction<double[]> rows(double[][] rows) {
        return rows == null ? null : row -> rows[row];
    }

    private static TreeVerdict verify(
            TokenTree tree, IntFunction<double[]> p, IntFunction<double[]> q, long seed, long stream, long position,
            boolean withoutReplacement) {
        double[] pRow = p.apply(0);
        int vocab = pRow.length;
        int[] path = new int[maxDepth(tree)];
        int accepted = 0;
        int node = -1;
        while (true) {
            int row = node + 1;
            if (row > 0) {
                pRow = p.apply(row);
            }
            ChainVerifier.requireLength("p[" + row + "]", pRow, vocab);
            long at = position + accepted; // absolute position of the token chosen below this node
            int[] kids = tree.childrenView(node);
            if (kids.length == 0) {
                double u = CounterRng.uniform(seed, stream, at, RngPurpose.SAMPLE, 0);
                return new TreeVerdict(Arrays.copyOf(path, accepted), ChainVerifier.inverseCdf(pRow, u));
            }
            double[] qRow = q == null ? null : q.apply(row);
            if (q != null) {
                ChainVerifier.requireLength("q[" + row + "]", qRow, vocab);
            }
            double[] target = pRow; // p', unnormalised after the first rejection
            double targetMass = 1.0;
            double[] proposal = qRow; // q, unnormalised once a child was removed
            double proposalMass = 1.0;
            boolean proposalOwned = false;
            int chosen = -1;
            for (int k = 0; k < kids.length; k++) {
                int x = tree.token(kids[k]);
                if (x >= vocab) {
                    throw new IllegalArgumentException("node " + kids[k] + " holds token " + x
                            + ", outside the vocabulary [0, " + vocab + ").");
                }
                // A deterministic drafter (q == null) proposes each child with certainty: one-hot at x.
                double qx = proposal == null ? 1.0 : proposal[x] / proposalMass;
                if (!(qx > 0)) {
                    throw new IllegalArgumentException("node " + kids[k] + " holds token " + x + ", which has probability "
                            + qx + " under the proposal of row " + row
                            + (withoutReplacement && k > 0 ? " with its earlier siblings removed" : "")
                            + ", so it cannot have been drafted from it.");
                }
                double px = target[x] / targetMass;
                double u = CounterRng.uniform(seed, stream, at, RngPurpose.ACCEPT, k);
                if (ChainVerifier.accepts(u, px, qx)) {
                    chosen = kids[k];
                    break;
                }
                // Rejected: the target becomes the residual norm(max(p' − q, 0)) (kept unnormalised), unless
                // that is all zero (p' == q up to rounding, when rejection was all but impossible): then p'
                // stays, as in ChainVerifier.
                double[] residual = new double[vocab];
                double residualMass = 0;
                for (int t = 0; t < vocab; t++) {
                    double qt = proposal == null ? (t == x ? 1.0 : 0.0) : proposal[t] / proposalMass;
                    double d = target[t] / targetMass - qt;
                    if (d > 0) {
                        residual[t] = d;
                        residualMass += d;
                    }
                }
                if (residualMass > 0) {
                    target = residual;
                    targetMass = residualMass;
                }
                if (withoutReplacement && proposal != null) {
                    if (!proposalOwned) {
                        proposal = proposal.clone();
                        proposalOwned = true;
                    }
                    proposal[x] = 0;
                    proposalMass = ChainVerifier.sum(proposal);
                }
            }
            if (chosen < 0) {
                double u = CounterRng.uniform(seed, stream, at, RngPurpose.RESIDUAL, 0);
                return new TreeVerdict(Arrays.copyOf(path, accepted), ChainVerifier.inverseCdf(target, u));
            }
            path[accepted++] = chosen;
            node = chosen;
        }
    }

    private static int maxDepth(TokenTree tree) {
        int max = 0;
        for (int j = 0; j < tree.size(); j++) {
            max = Math.max(max, tree.depth(j));
        }
        return max;
    }

    private static void requireRows(String name, int rows, TokenTree tree) {
        if (rows != tree.size() + 1) {
            throw new IllegalArgumentException("a tree of " + tree.size() + " nodes needs " + (tree.size() + 1)
                    + " rows of " + name + " (row 0 for the root, row j + 1 for node j), but got " + rows + ".");
        }
    }
}
