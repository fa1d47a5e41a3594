package dev.tandem.decoding.speculative;

import java.util.Arrays;

/**
 * A drafted token tree hanging below the accepted prefix (the root). Node j holds token {@code tokens[j]}
 * and hangs below node {@code parents[j]} ({@code -1} = a child of the root); parents come first
 * ({@code parents[j] < j}), so node order is a topological order. A node's children are ordered by index,
 * which is the order verification tries them in.
 *
 * <p>Rows of target logits / distributions are indexed as in {@code METHODS.md} "Token-tree
 * verification": row 0 = after the root (predicting depth-1 tokens), row j + 1 = after node j.
 */
public final class TokenTree {

    private final int[] tokens;
    private final int[] parents;
    private final int[] depth;
    private final int[][] children; // children[j + 1] = children of node j; children[0] = of the root

    public TokenTree(int[] tokens, int[] parents) {
        if (tokens.length != parents.length) {
            throw new IllegalArgumentException("tokens and parents must have one entry per node, but had "
                    + tokens.length + " and " + parents.length + ".");
        }
        int n = tokens.length;
        this.tokens = tokens.clone();
        this.parents = parents.clone();
        this.depth = new int[n];
        int[] childCount = new int[n + 1];
        for (int j = 0; j < n; j++) {
            if (this.tokens[j] < 0) {
                throw new IllegalArgumentException("tokens[" + j + "] = " + this.tokens[j] + " is not a token id.");
            }
            int parent = this.parents[j];
            if (parent < -1 || parent >= j) {
                throw new IllegalArgumentException("parents[" + j + "] = " + parent
                        + ", but a parent must be -1 (the root) or an earlier node in [0, " + j + ").");
            }
            depth[j] = parent < 0 ? 1 : depth[parent] + 1;
            childCount[parent + 1]++;
        }
        children = new int[n + 1][];
        for (int r = 0; r <= n; r++) {
            children[r] = new int[childCount[r]];
        }
        int[] filled = new int[n + 1];
        for (int j = 0; j < n; j++) {
            int r = this.parents[j] + 1;
            children[r][filled[r]++] = j;
        }
    }

    /** A chain: node i is the only child of node i − 1. */
    public static TokenTree chain(int... tokens) {
        int[] parents = new int[tokens.length];
        for (int j = 0; j < parents.length; j++) {
            parents[j] = j - 1;
        }
        return new TokenTree(tokens, parents);
    }

    /** Number of nodes (the root excluded). */
    public int size() {
        return tokens.length;
    }

    public int token(int node) {
        return tokens[node];
    }

    public int parent(int node) {
        return parents[node];
    }

    /** Depth of a node: 1 for children of the root; so node j occupies absolute position base + depth − 1. */
    public int depth(int node) {
        return depth[node];
    }

    /** The children of {@code node} (−1 = the root), in index order. */
    public int[] children(int node) {
        if (node < -1 || node >= tokens.length) {
            throw new IndexOutOfBoundsException("node " + node + " of a tree with " + tokens.length + " nodes");
        }
        return children[node + 1].clone();
    }

    int[] childrenView(int node) {
        return children[node + 1];
    }

    public int[] tokens() {
        return tokens.clone();
    }

    public int[] parents() {
        return parents.clone();
    }

    /** The tokens of the nodes on {@code path} (as in {@link TreeVerdict#path}). */
    public int[] tokensOf(int[] path) {
        int[] out = new int[path.length];
        for (int i = 0; i < path.length; i++) {
            out[i] = tokens[path[i]];
        }
        return out;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TokenTree t && Arrays.equals(tokens, t.tokens) && Arrays.equals(parents, t.parents);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(tokens) + Arrays.hashCode(parents);
    }

    @Override
    public String toString() {
        return "TokenTree[tokens=" + Arrays.toString(tokens) + ", parents=" + Arrays.toString(parents) + "]";
    }
}
