package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Grows {@link AdedDecoding}'s draft tree by a Monte-Carlo tree search over a {@link TrigramTable}. A
 * search node is a token sequence below the context; its children are the table's top
 * {@value #BRANCHING} successors after its last two tokens, each with prior P = their table probability.
 * Each iteration descends from the root by PUCT,
 *
 * <pre>
 *   child = argmax  Q(child) + c · P(child) · sqrt(N(node)) / (1 + N(child))       c = {@value #C_PUCT}
 * </pre>
 *
 * (Q = mean value, 0 before the first visit; lower index on ties), stops at a node not visited before or
 * one that cannot grow (the depth limit, or no successors), expands it, and adds its value to every node
 * on the way up. The value of a node is its path probability under the table, the product of the
 * conditional probabilities from the root: the table's estimate that the target accepts the whole path,
 * which is what the node adds to the expected accepted length of a tree holding it. The tree kept is the
 * most visited nodes (more visits first, then shallower, then lower search index). A node is visited
 * once before any of its children exist and again every time one of them is, so a parent always has more
 * visits than each child, outranks it, and the kept set is a connected tree (checked). No randomness: the same table and context give the same tree.
 */
final class AdedDrafter implements TreeSource {
    /** Successors per expansion. */
    static final int BRANCHING = 8;
    /** Exploration weight of PUCT. */
    static final double C_PUCT = 1.0;

    private final TrigramTable table;
    private final int iterations;

    // The search tree, node 0 = the root (the context); grown per call.
    private int[] token = new int[64];
    private int[] parent = new int[64];
    private int[] depth = new int[64];
    private double[] prior = new double[64];
    private double[] pathProbability = new double[64];
    private int[] visits = new int[64];
    private double[] valueSum = new double[64];
    private int[] firstChild = new int[64]; // children are contiguous: [firstChild, firstChild + childCount)
    private int[] childCount = new int[64];
    private boolean[] expanded = new boolean[64];
    private int size;
    private int observed; // context tokens the table has seen

    private TokenTree tree; // this round's

    AdedDrafter(TrigramTable table, int iterations) {
        this.table = table;
        this.iterations = iterations;
    }

    /** None: the search runs on the task's own thread, in {@link #begin}. */
    @Override
    public LanguageModel model() {
        return null;
    }

    @Override
    public void start(DecodingTask.KvSource kv) {
        // no model, no KV sequence
    }

    /** No model limits the depth: only the target's context does, which {@link TreeTask} checks. */
    @Override
    public int room(int length) {
        return Integer.MAX_VALUE;
    }

    /**
     * ADED's round, complete at once: first the table observes the context tokens it has not seen (the
     * prompt, then what each round accepted; the context only ever grows by accepted tokens), then
     * {@link #grow(int[], int, int, int)}.
     */
    @Override
    public void begin(int[] context, int length, int maxDepth, int maxNodes, SamplingParams sp, DecodeStats.Recorder stats) {
        table.observe(context, observed, length);
        observed = length;
        tree = grow(context, length, maxDepth, maxNodes);
    }

    @Override
    public boolean complete() {
        return true;
    }

    @Override
    public Batch.Entry next(DecodingTask.PrefillBudget prefill) {
        return null;
    }

    @Override
    public void advance(ForwardResult result) {
        throw new IllegalStateException("ADED's search runs no passes");
    }

    @Override
    public TokenTree tree() {
        return tree;
    }

    @Override
    public void close() {
        // nothing held: the table is this generation's copy
    }

    /**
     * A tree of at most {@code maxNodes} nodes and {@code maxDepth} (≥ 1) levels below
     * {@code context[0, length)} ({@code length} ≥ 1); empty when the table knows no successor of the
     * context's last token.
     */
    TokenTree grow(int[] context, int length, int maxDepth, int maxNodes) {
        size = 0;
        add(context[length - 1], -1, 0, 1.0); // the root, node 0, holds the context's last token
        search(context, length, maxDepth);
        return keep(maxNodes);
    }

    private void search(int[] context, int length, int maxDepth) {
        expand(0, context, length, maxDepth);
        visits[0] = 1;
        if (childCount[0] == 0) {
            return;
        }
        for (int it = 0; it < iterations; it++) {
            int node = 0;
            while (expanded[node] && childCount[node] > 0) {
                node = select(node);
            }
            if (!expanded[node]) {
                expand(node, context, length, maxDepth);
            }
            double value = pathProbability[node];
            for (int n = node; n >= 0; n = parent[n]) {
                visits[n]++;
                valueSum[n] += value;
            }
        }
    }

    private int select(int node) {
        double sqrtN = Math.sqrt(visits[node]);
        int best = -1;
        double bestScore = Double.NEGATIVE_INFINITY;
        for (int c = firstChild[node], end = c + childCount[node]; c < end; c++) {
            double q = visits[c] == 0 ? 0 : valueSum[c] / visits[c];
            double score = q + C_PUCT * prior[c] * sqrtN / (1 + visits[c]);
            if (score > bestScore) {
                bestScore = score;
                best = c;
            }
        }
        return best;
    }

    /** Adds the table's successors of {@code node} as its children (none at the depth limit). */
    private void expand(int node, int[] context, int length, int maxDepth) {
        expanded[node] = true;
        firstChild[node] = size;
        childCount[node] = 0;
        if (depth[node] >= maxDepth) {
            return;
        }
        // The node's last two tokens: its parent's (for the root, the context's second last) and its own.
        int a = node == 0 ? (length >= 2 ? context[length - 2] : -1) : token[parent[node]];
        int b = token[node];
        List<TrigramTable.Successor> next = table.successors(a, b, BRANCHING);
        for (TrigramTable.Successor s : next) {
            add(s.token(), node, depth[node] + 1, s.probability());
        }
        childCount[node] = next.size();
    }

    private int add(int tok, int par, int dep, double p) {
        if (size == token.length) {
            int cap = size * 2;
            token = Arrays.copyOf(token, cap);
            parent = Arrays.copyOf(parent, cap);
            depth = Arrays.copyOf(depth, cap);
            prior = Arrays.copyOf(prior, cap);
            pathProbability = Arrays.copyOf(pathProbability, cap);
            visits = Arrays.copyOf(visits, cap);
            valueSum = Arrays.copyOf(valueSum, cap);
            firstChild = Arrays.copyOf(firstChild, cap);
            childCount = Arrays.copyOf(childCount, cap);
            expanded = Arrays.copyOf(expanded, cap);
        }
        int n = size++;
        token[n] = tok;
        parent[n] = par;
        depth[n] = dep;
        prior[n] = p;
        pathProbability[n] = par < 0 ? 1.0 : pathProbability[par] * p;
        visits[n] = 0;
        valueSum[n] = 0;
        firstChild[n] = 0;
        childCount[n] = 0;
        expanded[n] = false;
        return n;
    }

    /** The up to {@code maxNodes} most visited nodes as a {@link TokenTree}, siblings in order of visits. */
    private TokenTree keep(int maxNodes) {
        List<Integer> visited = new ArrayList<>();
        for (int n = 1; n < size; n++) {
            if (visits[n] > 0) {
                visited.add(n);
            }
        }
        visited.sort((x, y) -> visits[x] != visits[y] ? Integer.compare(visits[y], visits[x])
                : depth[x] != depth[y] ? Integer.compare(depth[x], depth[y]) : Integer.compare(x, y));
        int kept = Math.min(Math.max(0, maxNodes), visited.size());
        boolean[] keep = new boolean[size];
        keep[0] = true;
        for (int i = 0; i < kept; i++) {
            keep[visited.get(i)] = true;
        }
        for (int i = 0; i < kept; i++) {
            int n = visited.get(i);
            if (!keep[parent[n]]) {
                throw new IllegalStateException("node " + n + " (" + visits[n] + " visits) was kept without its parent "
                        + parent[n] + " (" + visits[parent[n]] + " visits).");
            }
        }
        // Breadth first from the root, so parents come before children; siblings by visits, then search index.
        int[] outIndex = new int[size];
        int[] tokens = new int[kept];
        int[] parents = new int[kept];
        int[] queue = new int[kept + 1];
        int head = 0;
        int tail = 0;
        int out = 0;
        queue[tail++] = 0;
        outIndex[0] = -1;
        while (head < tail) {
            int node = queue[head++];
            List<Integer> kids = new ArrayList<>();
            for (int c = firstChild[node], end = c + childCount[node]; c < end; c++) {
                if (keep[c]) {
                    kids.add(c);
                }
            }
            kids.sort((x, y) -> visits[x] != visits[y] ? Integer.compare(visits[y], visits[x]) : Integer.compare(x, y));
            for (int c : kids) {
                tokens[out] = token[c];
                parents[out] = outIndex[node];
                outIndex[c] = out++;
                queue[tail++] = c;
            }
        }
        return new TokenTree(tokens, parents);
    }
}
