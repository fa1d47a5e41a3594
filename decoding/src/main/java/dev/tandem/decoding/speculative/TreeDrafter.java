package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.sampling.LogitsProcessors;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.PriorityQueue;

/**
 * Grows a token tree with a small model for {@link TreeDecoding}, deterministically: the children of a
 * node are the draft's top-k tokens there (by its processed logits: the repetition penalty along the
 * node's path, and for sampled requests temperature, top-k, top-p and min-p; tokens those mask out are
 * never proposed), highest first, lowest id on ties. Growth is best-first by the draft's path probability,
 * a level of up to {@code width} nodes per draft pass: every candidate whose parent's logits are known
 * waits in one queue, each pass adds the best ones (within the node budget and depth) and scores them
 * all at once as a Tree-shaped entry on the draft's own sequence, which is then truncated back.
 *
 * <p>The draft's KV sequence holds the context {@code [0, length)} between passes of a round (the root,
 * the context's last token, included); each round's first pass feeds the tokens it lacks (a first round's
 * prompt in chunks, as the prefill budget allows) and gives the root's logits; every later pass is one
 * level of growth.
 */
final class TreeDrafter implements TreeSource {
    private final LanguageModel model;
    private final int nodeBudget;
    private final int topK;
    private final int width;
    private KvSequence kv;
    // The tree in progress.
    private int length;
    private int maxDepth;
    private int maxNodes;
    private SamplingParams sp;
    private DecodeStats.Recorder stats;
    private int[] feed;        // the context the cache lacks, the root last
    private int fed;           // how many of feed are in the cache already
    private boolean rooted;    // the root's children are queued
    private int budget;
    private final List<Integer> tokens = new ArrayList<>();
    private final List<Integer> parents = new ArrayList<>();
    private final List<Integer> depths = new ArrayList<>();
    private final List<Double> logProbs = new ArrayList<>();
    private final PriorityQueue<Candidate> queue = new PriorityQueue<>((a, b) -> a.logProb != b.logProb
            ? Double.compare(b.logProb, a.logProb) : Long.compare(a.order, b.order));
    private long order;
    private int[] scratch;     // the context, then a node's path while its children are offered
    private List<Integer> expand; // the nodes the pending level pass scores, in its logit-row order
    private Batch.Entry pass;     // that pass, until next hands it out
    private boolean done = true;

    TreeDrafter(LanguageModel model, int nodeBudget, int topK, int width) {
        this.model = model;
        this.nodeBudget = nodeBudget;
        this.topK = topK;
        this.width = width;
    }

    @Override
    public LanguageModel model() {
        return model;
    }

    @Override
    public void start(DecodingTask.KvSource source) {
        if (kv != null) {
            throw new IllegalStateException("the drafter has started already");
        }
        kv = source.newSequence(model);
    }

    /** The deepest tree this drafter can grow after a context of {@code length} tokens (nodes of depth d feed position length − 1 + d). */
    @Override
    public int room(int length) {
        return Math.max(0, model.config().maxContext() - length + 1);
    }

    /** Rows {@code kv} can still append: free slots of its last block and free blocks of its cache. */
    static int freeRows(KvSequence kv) {
        int blockSize = kv.cache().blockSize();
        long rows = (long) kv.cache().freeBlocks() * blockSize + ((long) kv.blockCount() * blockSize - kv.length());
        return (int) Math.min(Integer.MAX_VALUE, rows);
    }

    /** A candidate node: its token, its parent node (−1 = root), its depth and its path log-probability. */
    private record Candidate(int token, int parent, int depth, double logProb, long order) {}

    /**
     * Starts a tree of at most the node budget, {@code maxNodes} and {@code maxDepth} (≥ 1) levels below
     * {@code context[0, length)}, and no more nodes than the draft's cache has free rows for once the root
     * is fed; {@code context} may be longer (scratch after {@code length}).
     */
    @Override
    public void begin(int[] context, int length, int maxDepth, int maxNodes, SamplingParams sp, DecodeStats.Recorder stats) {
        if (kv == null) {
            start(DecodingTask.KvSource.MODEL); // a drafter used outside the step protocol
        }
        if (kv.length() >= length) {
            kv.truncate(length - 1); // the root must be fed to get the logits after it
        }
        this.length = length;
        this.maxDepth = maxDepth;
        this.maxNodes = maxNodes;
        this.sp = sp;
        this.stats = stats;
        this.feed = Arrays.copyOfRange(context, kv.length(), length);
        this.fed = 0;
        this.rooted = false;
        tokens.clear();
        parents.clear();
        depths.clear();
        logProbs.clear();
        queue.clear();
        order = 0;
        scratch = Arrays.copyOf(context, length + maxDepth);
        expand = null;
        pass = null;
        done = false;
    }

    @Override
    public boolean complete() {
        return done;
    }

    @Override
    public Batch.Entry next(DecodingTask.PrefillBudget prefill) {
        if (done) {
            return null;
        }
        if (fed < feed.length) {
            int rest = feed.length - fed;
            // A lone token (a later round's usual catch-up) takes no budget; more draws on it as a prompt does.
            int take = rest > 1 ? prefill.take(rest) : rest;
            if (take == 0) {
                return null;
            }
            stats.draftPass();
            Batch.Entry entry = Batch.Entry.continuation(kv, Arrays.copyOfRange(feed, fed, fed + take));
            fed += take;
            if (fed < feed.length) {
                return entry.withLogitRows();
            }
            return summariesSuffice() ? entry.withLogitRows().withSummaryRows(topK, take - 1) : entry;
        }
        Batch.Entry entry = pass;
        pass = null;
        if (entry != null) {
            stats.draftPass();
        }
        return entry;
    }

    @Override
    public void advance(ForwardResult result) {
        if (fed < feed.length) {
            return; // a chunk of the catch-up: no logits yet
        }
        if (!rooted) {
            rooted = true;
            budget = Math.min(Math.min(nodeBudget, maxNodes), freeRows(kv));
            if (result.summaryRows(0) > 0) {
                offer(result.summary(0, 0), -1, 0, 0.0);
            } else {
                offer(result.lastLogits(0), -1, 0, 0.0, scratch, length);
            }
        } else {
            kv.truncate(length);
            for (int k = 0; k < expand.size(); k++) {
                int j = expand.get(k);
                int depth = depths.get(j);
                if (result.summaryRows(0) > 0) {
                    offer(result.summary(0, k), j, depth, logProbs.get(j));
                    continue;
                }
                // The node's path context: the accepted context, then the path's tokens.
                for (int a = j, d = depth; a >= 0; a = parents.get(a), d--) {
                    scratch[length + d - 1] = tokens.get(a);
                }
                offer(result.logits(0, k), j, depth, logProbs.get(j), scratch, length + depth);
            }
        }
        plan();
    }

    /**
     * Adds the best candidates, a level of up to {@code width} at a time, until a level has nodes to
     * expand (then {@link #pass} scores them) or the tree is done: out of budget or of candidates.
     */
    private void plan() {
        while (tokens.size() < budget && !queue.isEmpty()) {
            int first = tokens.size();
            while (tokens.size() < budget && tokens.size() - first < width && !queue.isEmpty()) {
                Candidate c = queue.poll();
                tokens.add(c.token);
                parents.add(c.parent);
                depths.add(c.depth);
                logProbs.add(c.logProb);
            }
            int added = tokens.size() - first;
            // Nodes that can still have children, and only while there is budget left for them.
            List<Integer> level = new ArrayList<>();
            for (int j = first; j < first + added; j++) {
                if (depths.get(j) < maxDepth && tokens.size() < budget) {
                    level.add(j);
                }
            }
            if (level.isEmpty()) {
                continue;
            }
            // Feed only the nodes to expand and their ancestors (in node order, so parents come first):
            // leaves never need to be seen, and one at the deepest level may lie past the draft's context.
            int n = tokens.size();
            int[] row = new int[n];
            Arrays.fill(row, -1);
            for (int j : level) {
                for (int a = j; a >= 0 && row[a] != -2; a = parents.get(a)) {
                    row[a] = -2; // needed
                }
            }
            int rows = 0;
            for (int j = 0; j < n; j++) {
                if (row[j] == -2) {
                    row[j] = rows++;
                }
            }
            int[] rowTokens = new int[rows];
            int[] rowParents = new int[rows];
            int[] positions = new int[rows];
            for (int j = 0; j < n; j++) {
                if (row[j] >= 0) {
                    rowTokens[row[j]] = tokens.get(j);
                    rowParents[row[j]] = parents.get(j) < 0 ? -1 : row[parents.get(j)];
                    positions[row[j]] = length - 1 + depths.get(j);
                }
            }
            int[] logitRows = new int[level.size()];
            for (int k = 0; k < logitRows.length; k++) {
                logitRows[k] = row[level.get(k)];
            }
            expand = level;
            Batch.Entry of = Batch.Entry.of(kv, rowTokens, positions, new AttentionShape.Tree(rowParents));
            pass = summariesSuffice() ? of.withSummaryRows(topK, logitRows) : of.withLogitRows(logitRows);
            return;
        }
        done = true;
    }

    @Override
    public TokenTree tree() {
        if (!done) {
            throw new IllegalStateException("the tree is not complete");
        }
        int[] t = tokens.stream().mapToInt(Integer::intValue).toArray();
        int[] p = parents.stream().mapToInt(Integer::intValue).toArray();
        return new TokenTree(t, p);
    }

    /**
     * True when the raw logits' top-k and softmax decide the children (no repetition penalty, no temperature or
     * other processor: greedy requests): a pass then asks for {@link LogitSummary summaries} of its rows, so only
     * the top ids and two sums leave the backend, not rows of logits. The children and their log-probabilities
     * are the same numbers {@link #offer(float[], int, int, double, int[], int)} computes from the logits.
     */
    private boolean summariesSuffice() {
        return sp.isGreedy() && sp.repetitionPenalty() == 1f;
    }

    /** Queues the top-k children of {@code parent} from its row's summary (see {@link #summariesSuffice}). */
    private void offer(LogitSummary summary, int parent, int parentDepth, double parentLogProb) {
        if (!summary.valid()) {
            return; // as offer(float[], ...) does for a row whose max is NaN
        }
        for (int j = 0; j < summary.ids().length; j++) {
            queue.add(new Candidate(summary.ids()[j], parent, parentDepth + 1, parentLogProb + summary.logProbability(j), order++));
        }
    }

    /** Queues the top-k children of {@code parent} (logits after it, its path context in {@code ctx[0, ctxLength)}). */
    private void offer(float[] logits, int parent, int parentDepth, double parentLogProb, int[] ctx, int ctxLength) {
        float[] processed = logits.clone();
        LogitsProcessors.apply(processed, sp, ctx, ctxLength);
        double max = Double.NEGATIVE_INFINITY;
        for (float l : processed) {
            max = Math.max(max, l);
        }
        if (max == Double.NEGATIVE_INFINITY || Double.isNaN(max)) {
            return;
        }
        double total = 0;
        for (float l : processed) {
            if (l != Float.NEGATIVE_INFINITY) {
                total += Math.exp(l - max);
            }
        }
        double logTotal = Math.log(total);
        for (int token : topTokens(processed, topK)) {
            double lp = parentLogProb + (processed[token] - max - logTotal);
            queue.add(new Candidate(token, parent, parentDepth + 1, lp, order++));
        }
    }

    /** The {@code k} highest of {@code logits} (finite ones only), highest first, lowest id on ties. */
    static int[] topTokens(float[] logits, int k) {
        return LogitSummary.topIds(logits, k);
    }

    @Override
    public void close() {
        if (kv != null) {
            kv.close();
        }
    }
}
