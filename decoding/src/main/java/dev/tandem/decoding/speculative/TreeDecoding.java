package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.LogitsProcessors;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;
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

    /** Not yet a step machine: runs only alone, through {@link #generate}. */
    @Override
    public DecodingTask task(GenerationRequest request) {
        throw new UnsupportedOperationException(name() + " does not run as steps yet");
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

    @Override
    public GenerationResult generate(GenerationRequest request, Consumer<TokenEvent> listener) {
        return runTree(name(), target, new TreeDrafter(draft, nodeBudget, topK, width()), maxDepth, nodeBudget, observer,
                request, listener);
    }

    /** What grows a round's token tree for {@link #runTree}: a draft model's top-k ({@link TreeDrafter}), or ADED's search. */
    interface TreeSource extends AutoCloseable {
        /** The deepest tree this source can grow after a context of {@code length} tokens. */
        int room(int length);

        /**
         * A tree after {@code context[0, length)}, at most {@code maxDepth} deep with at most {@code maxNodes}
         * nodes (both ≥ 1); {@code context} may be longer (scratch space).
         */
        TokenTree grow(int[] context, int length, int maxDepth, int maxNodes, SamplingParams sp, DecodeStats.Recorder stats);

        @Override
        void close();
    }

    /**
     * The draft-tree-and-verify loop shared by the tree methods. Invariant between rounds, as in
     * {@link SpeculativeDecoding}'s chain loop: the target's KV sequence holds the context without its last
     * token, which the next verification pass feeds first (as the root). Each round grows a tree of at most
     * {@code nodeCap} nodes and {@code maxDepth} levels (fewer near the end of the budget, the context or the
     * cache), verifies it in one tree-masked pass ({@link #verify}) and keeps only the accepted path.
     */
    static GenerationResult runTree(String method, LanguageModel target, TreeSource source, int maxDepth, int nodeCap,
                                    RoundObserver observer, GenerationRequest request, Consumer<TokenEvent> listener) {
        DecodeStats.Recorder stats = new DecodeStats.Recorder(method);
        RequestState state = RequestState.start(target, request);
        SamplingParams sp = request.sampling();
        int targetContext = target.config().maxContext();
        try (source) {
            SpeculativeDecoding.prefillAllButLast(target, state, stats);
            while (!state.finished()) {
                long roundStart = System.nanoTime();
                int length = state.contextLength();
                int remaining = request.maxTokens() - state.generated();
                int depth = SpeculativeDecoding.roundLength(maxDepth, remaining, targetContext - length - 1,
                        source.room(length));
                // The tree's rows sit in the target's cache until compaction: the root and every node.
                int maxNodes = Math.min(nodeCap, TreeDrafter.freeRows(state.kv()) - 1);
                if (maxNodes < 1) {
                    depth = 0;
                }
                int[] context = state.context(depth + 1);
                TokenTree tree = new TokenTree(new int[0], new int[0]);
                if (depth > 0) {
                    long t0 = System.nanoTime();
                    tree = source.grow(context, length, depth, maxNodes, sp, stats);
                    stats.addDraftNanos(System.nanoTime() - t0);
                }
                int n = tree.size();

                long t0 = System.nanoTime();
                KvSequence kv = state.kv();
                int base = kv.length(); // length − 1: the root goes there
                int[] rows = new int[n + 1];
                int[] parents = new int[n + 1];
                int[] positions = new int[n + 1];
                layOut(tree, context[length - 1], length - 1, rows, parents, positions);
                ForwardResult fr = target.forward(Batch.of(Batch.Entry.of(kv, rows, positions,
                        new AttentionShape.Tree(parents)).withAllNormedRows()));
                stats.targetPass();
                LazyLogits logits = LazyLogits.of(target, fr, 0);
                TreeVerdict verdict = verify(tree, logits, sp, context, length, request.streamId());
                int[] path = verdict.path();
                int accepted = path.length;
                stats.verification(n, accepted);
                stats.addVerifyNanos(System.nanoTime() - t0);

                // The target holds [0, length) (the root last) and the n node rows after it; keep the accepted path.
                keepPath(kv, base, path);
                int[] pathTokens = tree.tokensOf(path);
                if (observer != null) {
                    int[] kept = Arrays.copyOf(context, length + accepted);
                    System.arraycopy(pathTokens, 0, kept, length, accepted);
                    observer.afterRound(kv, kept, verdict.next());
                }
                emitPath(state, pathTokens, verdict, logits, listener);
                state.addDecodeStep(System.nanoTime() - roundStart);
            }
            return state.result().withDecodeStats(stats.build(state.result().generatedIds().length));
        } catch (RuntimeException | Error e) {
            state.abandon();
            throw e;
        }
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
