package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.Tasks;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The draft-tree-and-verify loop of the tree methods (tree, aded) as a {@link DecodingTask}. Invariant
 * between rounds, as in {@link ChainTask}: the target's KV sequence holds the context without its last
 * token, which the next verification pass feeds first (as the root).
 *
 * <p>A round: the {@link TreeSource} grows a tree of at most {@code nodeCap} nodes and {@code maxDepth}
 * levels (fewer near the end of the budget, the context or the cache; a draft model in passes of its own,
 * a level a pass, over as many steps' worth of passes as it needs; ADED's search at once). In the first
 * step that begins with the tree complete, the target scores [the root, every node] in one pass with a
 * tree attention mask, asking for the final normalised hidden state at every row; when that pass returns,
 * still on the target's side of the step, {@link TreeDecoding#verify} walks the tree running the LM head
 * only for the rows it visits ({@link LazyLogits}) and the target's cache keeps only the accepted path
 * ({@link KvSequence#compact}); the step ends by emitting the path's tokens and the target's next token.
 * The first round's tree grows in the same step as the target's prefill (they do not depend on each other).
 */
final class TreeTask implements DecodingTask {
    private final String method;
    private final LanguageModel target;
    private final TreeSource source;
    private final int maxDepth;
    private final int nodeCap;
    private final TreeDecoding.RoundObserver observer;
    private final GenerationRequest request;
    private final int[] promptIds;
    private final int[] eos;
    private final DecodeStats.Recorder stats;
    private final int targetContext;
    private RequestState state;

    // Target prefill: the prompt without its last token.
    private int prefilled;
    private int prefillPlanned;

    // The round in progress.
    private boolean inRound;
    private long roundStart;
    private int length;          // context length at the round's start
    private int[] context;       // the context, with room for the tree's depth after it
    private boolean treeReady;   // the tree was complete when this step began: verify in this step
    private boolean verifyPlanned;
    private TokenTree tree;
    private LazyLogits logits;   // the verification pass's rows, computed as the walk visits them
    private TreeVerdict verdict;
    private int[] pathTokens;

    TreeTask(String method, LanguageModel target, TreeSource source, int maxDepth, int nodeCap,
             TreeDecoding.RoundObserver observer, GenerationRequest request) {
        this.method = method;
        this.target = target;
        this.source = source;
        this.maxDepth = maxDepth;
        this.nodeCap = nodeCap;
        this.observer = observer;
        this.request = request;
        try {
            this.promptIds = new Generator(target).promptIds(request);
            this.eos = Generator.eosTokenIds(target, request);
        } catch (RuntimeException | Error e) {
            source.close();
            throw e;
        }
        this.stats = new DecodeStats.Recorder(method);
        this.targetContext = target.config().maxContext();
    }

    @Override
    public String method() {
        return method;
    }

    @Override
    public List<LanguageModel> models() {
        return source.model() == null || source.model() == target ? List.of(target) : List.of(target, source.model());
    }

    @Override
    public int blocksNeeded(LanguageModel model) {
        // The target appends the root and up to nodeCap nodes past the context; a draft model up to nodeCap rows.
        int blocks = Tasks.blocks(model, promptIds.length, request.maxTokens(), nodeCap + 1);
        return source.model() == target ? 2 * blocks : blocks; // the draft's sequence in the target's cache too
    }

    @Override
    public void start(KvSource kv) {
        if (state != null) {
            throw new IllegalStateException("the task has started already");
        }
        state = new RequestState(target, request, promptIds, eos, kv.newSequence(target));
        source.start(kv);
        prefilled = promptIds.length <= 1 ? promptIds.length - 1 : 0;
    }

    private boolean prefillDone() {
        return prefilled >= promptIds.length - 1;
    }

    @Override
    public void beginStep() {
        verifyPlanned = false;
        if (!inRound && !state.finished()) {
            startRound();
        }
        treeReady = inRound && source.complete();
    }

    private void startRound() {
        inRound = true;
        roundStart = System.nanoTime();
        length = state.contextLength();
        int remaining = request.maxTokens() - state.generated();
        int depth = SpeculativeDecoding.roundLength(maxDepth, remaining, targetContext - length - 1, source.room(length));
        // The tree's rows sit in the target's cache until compaction: the root and every node. Counted as if the
        // prefill (which may still be running in this round's first step) were in the cache already.
        KvSequence kv = state.kv();
        int maxNodes = Math.min(nodeCap, TreeDrafter.freeRows(kv) - (length - 1 - kv.length()) - 1);
        if (maxNodes < 1) {
            depth = 0;
        }
        context = state.context(depth + 1);
        tree = null;
        verdict = null;
        if (depth > 0) {
            long t0 = System.nanoTime();
            source.begin(context, length, depth, maxNodes, request.sampling(), stats);
            stats.addDraftNanos(System.nanoTime() - t0);
        } else {
            tree = new TokenTree(new int[0], new int[0]);
        }
    }

    @Override
    public List<Batch.Entry> next(LanguageModel model, PrefillBudget prefill) {
        List<Batch.Entry> out = new ArrayList<>(2);
        if (model == target) {
            if (!prefillDone()) {
                if (prefillPlanned == 0) {
                    int n = prefill.take(promptIds.length - 1 - prefilled);
                    if (n > 0) {
                        prefillPlanned = n;
                        // Nobody reads this pass's logits (the verification feeds the last token and reads after it).
                        out.add(Batch.Entry.continuation(state.kv(), Arrays.copyOfRange(promptIds, prefilled, prefilled + n))
                                .withLogitRows());
                    }
                }
            } else if (inRound && !verifyPlanned && (treeReady || tree != null)) {
                verifyPlanned = true;
                if (tree == null) {
                    tree = source.tree();
                }
                int n = tree.size();
                int[] rows = new int[n + 1];
                int[] parents = new int[n + 1];
                int[] positions = new int[n + 1];
                TreeDecoding.layOut(tree, context[length - 1], length - 1, rows, parents, positions);
                out.add(LazyLogits.ask(Batch.Entry.of(state.kv(), rows, positions, new AttentionShape.Tree(parents)), target,
                        state.needsOnlyGreedyToken()));
            }
        }
        if (model == source.model() && inRound && tree == null && !treeReady) {
            Batch.Entry e = source.next(prefill);
            if (e != null) {
                out.add(e);
            }
        }
        return out;
    }

    @Override
    public void advance(LanguageModel model, ForwardResult result, long nanos) {
        int entry = 0;
        if (model == target) {
            if (prefillPlanned > 0) {
                prefilled += prefillPlanned;
                prefillPlanned = 0;
                stats.targetPass();
                state.addPrefillNanos(nanos);
                entry++;
            } else if (verifyPlanned && verdict == null) {
                verify(result.slice(0, 1), nanos);
                entry++;
            }
        }
        if (model == source.model() && entry < result.entries()) {
            long t0 = System.nanoTime();
            source.advance(result.slice(entry, 1));
            stats.addDraftNanos(nanos + System.nanoTime() - t0);
        }
    }

    /**
     * The verification, on the target's side of the step: the walk (which runs the target's LM head for the rows
     * it visits), then the compaction of the target's cache to the accepted path.
     */
    private void verify(ForwardResult pass, long nanos) {
        long t0 = System.nanoTime();
        stats.targetPass();
        logits = LazyLogits.of(target, pass, 0);
        verdict = TreeDecoding.verify(tree, logits, request.sampling(), context, length, request.streamId());
        int[] path = verdict.path();
        int accepted = path.length;
        stats.verification(tree.size(), accepted);
        // The rows endStep emits with (the walk visited them): the root's and each accepted node's.
        int[] emitted = new int[accepted + 1];
        for (int i = 0; i < accepted; i++) {
            emitted[i + 1] = path[i] + 1;
        }
        logits.prefetch(emitted);
        stats.addVerifyNanos(nanos + System.nanoTime() - t0);
        // The target holds [0, length) (the root last) and the nodes' rows after it; keep the accepted path.
        KvSequence kv = state.kv();
        TreeDecoding.keepPath(kv, length - 1, path);
        pathTokens = tree.tokensOf(path);
        if (observer != null) {
            int[] kept = Arrays.copyOf(context, length + accepted);
            System.arraycopy(pathTokens, 0, kept, length, accepted);
            observer.afterRound(kv, kept, verdict.next());
        }
    }

    @Override
    public List<TokenEvent> endStep() {
        if (verdict == null) {
            return List.of();
        }
        List<TokenEvent> events = new ArrayList<>(pathTokens.length + 1);
        TreeDecoding.emitPath(state, pathTokens, verdict, logits, events::add);
        state.addDecodeStep(System.nanoTime() - roundStart);
        verdict = null;
        logits = null;
        inRound = false;
        if (state.finished()) {
            source.close();
        }
        return events;
    }

    @Override
    public boolean finished() {
        return state != null && state.finished();
    }

    @Override
    public GenerationResult result() {
        GenerationResult r = state.result();
        return r.withDecodeStats(stats.build(r.generatedIds().length));
    }

    @Override
    public void end(FinishReason reason) {
        state.end(reason);
        source.close();
    }

    @Override
    public void abandon() {
        if (state != null && !state.finished()) {
            state.abandon();
        }
        source.close();
    }
}
