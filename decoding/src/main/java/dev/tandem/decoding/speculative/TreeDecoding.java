package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.LogitsProcessors;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.LanguageModel;

import java.util.function.Consumer;
import java.util.function.IntFunction;

/**
 * Token-tree speculative decoding ({@code METHODS.md}, "Token-tree verification"). Per round the draft
 * model grows a tree below the context (children of a node = the draft's top-k tokens there, grown
 * best-first by the draft's path probability within a node budget and a depth; see {@link TreeDrafter}),
 * the target scores [the context's last token as the root, every node] in ONE forward pass with a tree
 * attention mask (positions = prefix length + depth, the final normalised hidden state at every row), and
 * {@link TreeVerifier} picks a path: greedy follows the target's argmax; sampling uses
 * {@link TreeVerifier#sampleIid} with {@code q == null}, exact for the drafter's fixed (deterministic)
 * children. The LM head runs only for the rows the walk visits, the root's and each accepted node's
 * ({@link LazyLogits}), bit-identical to logits at every row. The target's cache then keeps
 * only the accepted path ({@link KvSequence#compact}). Greedy output is bit-identical to plain greedy
 * decoding of the target; sampled output follows the target's distribution exactly. Tokens go through the
 * same {@link RequestState} as plain decoding, so EOS, stop strings, max tokens and logprobs behave
 * identically. Never grows a tree deeper than the remaining context of either model or the remaining
 * token budget, nor with more nodes than either model's KV cache has free rows for.
 *
 * <p>Runs as a {@link TreeTask} in the step protocol: the draft's passes (the root, then a level a pass)
 * fill one step (more while a first prompt goes in chunks), the target's tree pass, the walk and the
 * compaction the next.
 */
public final class TreeDecoding implements DecodingStrategy {
    /** Default node budget per round. */
    public static final int DEFAULT_NODE_BUDGET = 16;
    /** Default number of children per node. */
    public static final int DEFAULT_TOP_K = 3;
    /** Default deepest level. */
    public static final int DEFAULT_MAX_DEPTH = 4;

    private final LanguageModel target;
    private final LanguageModel draft;
    private final int nodeBudget;
    private final int topK;
    private final int maxDepth;
    private final RoundObserver observer;

    /** Sees the target's cache after each round's compaction (tests). */
    interface RoundObserver {
        /**
         * @param kv   the target's sequence, holding exactly {@code kept}
         * @param kept the context so far with the accepted path appended (the verified {@code next} not yet)
         * @param next the target's token after the accepted path, which the next round feeds first
         */
        void afterRound(KvSequence kv, int[] kept, int next);
    }

    /**
     * A tree of at most {@code nodeBudget} (≥ 1) nodes and {@code maxDepth} (≥ 1) levels, each node with up
     * to {@code topK} (≥ 1) children.
     *
     * @throws TandemException if the draft's vocabulary differs from the target's
     */
    public TreeDecoding(LanguageModel target, LanguageModel draft, int nodeBudget, int topK, int maxDepth) {
        this(target, draft, nodeBudget, topK, maxDepth, null);
    }

    private TreeDecoding(LanguageModel target, LanguageModel draft, int nodeBudget, int topK, int maxDepth,
                         RoundObserver observer) {
        if (nodeBudget < 1) {
            throw new IllegalArgumentException("the tree's node budget must be at least 1, but was " + nodeBudget + ".");
        }
        if (topK < 1) {
            throw new IllegalArgumentException("the tree's top-k must be at least 1, but was " + topK + ".");
        }
        if (maxDepth < 1) {
            throw new IllegalArgumentException("the tree's depth must be at least 1, but was " + maxDepth + ".");
        }
        SpeculativeDecoding.requireSameVocabulary(target, draft);
        this.target = target;
        this.draft = draft;
        this.nodeBudget = nodeBudget;
        this.topK = topK;
        this.maxDepth = maxDepth;
        this.observer = observer;
    }

    /** Budget {@value #DEFAULT_NODE_BUDGET}, top-{@value #DEFAULT_TOP_K}, depth {@value #DEFAULT_MAX_DEPTH}. */
    public static TreeDecoding of(LanguageModel target, LanguageModel draft) {
        return new TreeDecoding(target, draft, DEFAULT_NODE_BUDGET, DEFAULT_TOP_K, DEFAULT_MAX_DEPTH);
    }

    TreeDecoding withObserver(RoundObserver observer) {
        return new TreeDecoding(target, draft, nodeBudget, topK, maxDepth, observer);
    }

    @Override
    public DecodingTask task(GenerationRequest request) {
        return new TreeTask(name(), target, new TreeDrafter(draft, nodeBudget, topK, width()), maxDepth, nodeBudget,
                observer, request);
    }

    @Override
    public String name() {
        return "tree";
    }

    public int nodeBudget() {
        return nodeBudget;
    }

    public int topK() {
        return topK;
    }

    public int maxDepth() {
        return maxDepth;
    }

    /** Nodes added per draft pass: the budget spread over the depth. */
    private int width() {
        return Math.max(1, (nodeBudget + maxDepth - 1) / maxDepth);
    }

    /**
     * The rows of a tree-masked verification pass: row 0 the root ({@code rootToken} at {@code rootPosition},
     * parent −1, i.e. it sees the cached prefix), row j + 1 node j (parent its parent's row, position
     * rootPosition + depth). The arrays need at least size + 1 entries; later entries are left alone.
     */
    static void layOut(TokenTree tree, int rootToken, int rootPosition, int[] tokens, int[] parents, int[] positions) {
        tokens[0] = rootToken;
        parents[0] = -1;
        positions[0] = rootPosition;
        for (int j = 0; j < tree.size(); j++) {
            tokens[j + 1] = tree.token(j);
            parents[j + 1] = tree.parent(j) + 1;
            positions[j + 1] = rootPosition + tree.depth(j);
        }
    }

    /** Keeps [0, base], the root, and the accepted {@code path}'s node rows (laid out by {@link #layOut}) in {@code kv}. */
    static void keepPath(KvSequence kv, int base, int[] path) {
        int[] keep = new int[path.length];
        for (int i = 0; i < path.length; i++) {
            keep[i] = base + 1 + path[i];
        }
        kv.compact(base + 1, keep);
    }

    /**
     * Emits the accepted path's tokens, each with the logits of the row that predicted it, then the target's
     * next token, stopping as soon as the request is finished. Asks {@code logits} only for the path's rows,
     * which the verification visited.
     */
    static void emitPath(RequestState state, int[] pathTokens, TreeVerdict verdict, IntFunction<float[]> logits,
                         Consumer<TokenEvent> listener) {
        int[] path = verdict.path();
        int row = 0;
        for (int i = 0; i < path.length && !state.finished(); i++) {
            listener.accept(state.acceptToken(pathTokens[i], logits.apply(row)));
            row = path[i] + 1;
        }
        if (!state.finished()) {
            listener.accept(state.acceptToken(verdict.next(), logits.apply(row)));
        }
    }

    /**
     * Picks the accepted path of {@code tree} from the target's raw logits ({@code logits.apply(0)} after the
     * root, {@code logits.apply(j + 1)} after node j), asking only for the rows the walk visits: greedy follows
     * the argmax, of logits processed with each row's own path as context when a repetition penalty is set;
     * sampling uses {@link TreeVerifier#sampleIid} with {@code q == null}, exact for a deterministic drafter's
     * fixed children. {@code context} holds the context in [0, {@code length}) and room for the tree's depth
     * after it, which this overwrites.
     */
    static TreeVerdict verify(TokenTree tree, LazyLogits logits, SamplingParams sp, int[] context, int length, long stream) {
        if (logits.greedyOnly()) {
            // The pass sent back greedy tokens: it was asked for them only where they decide (LazyLogits.ask).
            if (!sp.isGreedy() || sp.repetitionPenalty() != 1f) {
                throw new IllegalStateException("a tree pass sent back greedy tokens for a request that reads its logits");
            }
            return TreeVerifier.greedyFromArgmax(tree, logits::greedyToken);
        }
        return verify(tree, (IntFunction<float[]>) logits, sp, context, length, stream);
    }

    static TreeVerdict verify(TokenTree tree, IntFunction<float[]> logits, SamplingParams sp, int[] context, int length,
                              long stream) {
        boolean greedy = sp.isGreedy();
        if (greedy && sp.repetitionPenalty() == 1f) {
            return TreeVerifier.greedy(tree, logits);
        }
        // Each visited row is processed once, with its own path as context (the repetition penalty sees it).
        if (greedy) {
            float[][] processed = new float[tree.size() + 1][];
            return TreeVerifier.greedy(tree, r -> {
                if (processed[r] == null) {
                    int d = writePath(tree, r, context, length);
                    processed[r] = logits.apply(r).clone();
                    LogitsProcessors.apply(processed[r], sp, context, length + d);
                }
                return processed[r];
            });
        }
        double[][] p = new double[tree.size() + 1][];
        return TreeVerifier.sampleIid(tree, r -> {
            if (p[r] == null) {
                int d = writePath(tree, r, context, length);
                p[r] = Sampler.distribution(logits.apply(r), sp, context, length + d);
            }
            return p[r];
        }, null, sp.seed(), stream, length);
    }

    /** Writes the tokens of row {@code r}'s path (its node and the node's ancestors) after context[0, length); returns its depth. */
    private static int writePath(TokenTree tree, int r, int[] context, int length) {
        int d = r == 0 ? 0 : tree.depth(r - 1);
        for (int a = r - 1, k = d; a >= 0; a = tree.parent(a), k--) {
            context[length + k - 1] = tree.token(a);
        }
        return d;
    }
}
