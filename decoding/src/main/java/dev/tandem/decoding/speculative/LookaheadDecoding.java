package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.Tasks;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Lookahead decoding (Fu et al. 2024, "Break the sequential dependency of LLM inference using lookahead
 * decoding"; {@code METHODS.md}, "Lookahead / Jacobi parallel decoding"): no second model. Each step is ONE
 * target forward pass over a token tree rooted at the last context token (row 0, position length − 1; the
 * cache holds the context without it, as in {@link TreeDecoding}) with two branches:
 *
 * <ul>
 *   <li><b>Lookahead branch</b>: a window of the last L ≤ N − 1 Jacobi iterations, level j holding W guesses
 *   (j, c), c = 0..W−1, at relative position j + c. Cell (0, 0) is the root itself, so level 0 adds W − 1 rows;
 *   (0, c) hangs below (0, c − 1) and (j ≥ 1, c) below (j − 1, c). The argmax of the target at the newest level's
 *   cells (L − 1, c) is the Jacobi update of position L + c: it becomes the new level. Once the window holds
 *   N − 1 levels, column c with its new token is an n-gram [(0, c), (1, c), .., (N−2, c), new] (the root's
 *   token standing for (0, 0)), filed under its first token in the {@link NgramPool}; the oldest level is
 *   dropped. Level 0 starts as the prompt's last W tokens (cycled if it is shorter); n-grams come once the
 *   window is full (N − 2 warm-up steps).</li>
 *   <li><b>Verification branch</b>: up to G continuations of the pool's n-grams that start with the root's
 *   token (most recent first), merged into a trie below the root; {@link TreeDecoding#verify} picks the
 *   accepted path (greedy: the target's argmax; sampling: {@link TreeVerifier#sampleIid} with q = null) and
 *   {@link KvSequence#compact} keeps only the root and that path, dropping every lookahead row.</li>
 * </ul>
 *
 * <p>The mask. The paper lets each lookahead token see the input, the oldest level's tokens before its own
 * diagonal, and one token per level on its diagonal of the Jacobi trajectory (its figure 5; llama.cpp's
 * lookahead example builds the same mask with one sequence per column: sequence c + 1 holds the input, level
 * 0's cells 1..c and column c of every later level). In every case what a token sees is a single chain from
 * the root: (j, c) → (j − 1, c) → .. → (0, c) → (0, c − 1) → .. → the root, one position apart each, so the
 * mask is exactly {@link AttentionShape.Tree} with these parents, and positions = length − 1 + depth. The
 * "diagonal" of the paper is the column here because each level is placed one position further right than
 * the one before: a token stays at the absolute position it was guessed for while the input advances by one
 * token per step. When a step accepts drafts too the input advances further and the window is not realigned
 * (llama.cpp re-seeds its levels per extra token instead; shifting every level left by the extra tokens was
 * tried here and accepted fewer drafts on bard-l, as did placing every level at positions 1..W). The lookahead
 * branch always takes the raw argmax, also when sampling.
 *
 * <p>Why the output is exact. The lookahead rows are never emitted and never verified; they only choose
 * which deterministic drafts the trie holds, and no row of the trie sees them (each trie row sees the cached
 * context and its trie ancestors only, which a causal pass over that path reproduces). Greedy output is
 * therefore bit-identical to plain greedy decoding, and sampled output follows the target's distribution
 * exactly, as for any deterministic drafter ({@link TreeVerifier}): the drafts depend only on earlier steps,
 * whose random draws were at earlier positions than this step's. Tokens go through {@link RequestState},
 * so EOS, stop strings, max tokens and logprobs behave as in plain decoding. A step's trie is never deeper than
 * the tokens still wanted or the remaining context allow ({@link SpeculativeDecoding#roundLength}); the
 * lookahead branch is skipped (the window kept as it is) for the last step and for a step whose rows would pass
 * the end of the context or the free KV rows.
 *
 * <p>As steps ({@link #task}): the prompt but its last token is prefilled in chunks of the step's prefill budget,
 * one pass a step, then each step is one round, i.e. one target pass, whose rows may share the pass with other
 * requests'. The window and the pool belong to the request, and {@link DecodingTask#blocksNeeded} reserves a
 * round's rows (the largest trie and window), so the free-rows cap never binds under a reservation and a request
 * gives the same tokens among others as alone.
 */
public final class LookaheadDecoding implements DecodingStrategy {
    /** Default window: guesses per Jacobi level. */
    public static final int DEFAULT_WINDOW = 5;
    /** Default n-gram size (the lookahead branch keeps n − 1 levels; drafts are n − 1 tokens long). */
    public static final int DEFAULT_NGRAM = 4;
    /** Default most n-grams verified per step (also the pool's n-grams kept per first token). */
    public static final int DEFAULT_CANDIDATES = 5;

    private final LanguageModel target;
    private final int window;
    private final int ngram;
    private final int candidates;
    private final StepObserver observer;

    /** Sees every step (tests). */
    interface StepObserver {
        void afterStep(Step step);
    }

    /**
     * One step: the forward pass's rows (row 0 the root, rows 1..trieNodes the trie, then the lookahead rows),
     * their parents (−1 for the root, a child of the cached prefix) and absolute positions, the raw logits of
     * every row (computed for the observer: a step without one runs the LM head only at the rows it reads), and
     * after verification the accepted path's tokens, the target's next token and the cache
     * (valid only during the call), compacted to the context plus the accepted path.
     */
    record Step(int[] context, int[] tokens, int[] parents, int[] positions, int trieNodes, float[][] logits,
                int[] accepted, int next, KvSequence kv) {}

    /** The defaults: window {@value #DEFAULT_WINDOW}, {@value #DEFAULT_NGRAM}-grams, {@value #DEFAULT_CANDIDATES} candidates. */
    public LookaheadDecoding(LanguageModel target) {
        this(target, DEFAULT_WINDOW, DEFAULT_NGRAM, DEFAULT_CANDIDATES);
    }

    /**
     * @param window     guesses per Jacobi level (≥ 1)
     * @param ngram      n-gram size n (≥ 2): n − 1 levels, drafts of n − 1 tokens
     * @param candidates most n-grams verified per step (≥ 1)
     */
    public LookaheadDecoding(LanguageModel target, int window, int ngram, int candidates) {
        this(target, window, ngram, candidates, null);
    }

    private LookaheadDecoding(LanguageModel target, int window, int ngram, int candidates, StepObserver observer) {
        if (window < 1) {
            throw new IllegalArgumentException("the lookahead window must hold at least 1 token, but was " + window + ".");
        }
        if (ngram < 2) {
            throw new IllegalArgumentException("the n-gram size must be at least 2, but was " + ngram + ".");
        }
        if (candidates < 1) {
            throw new IllegalArgumentException("lookahead must verify at least 1 candidate n-gram per step, but was "
                    + candidates + ".");
        }
        this.target = target;
        this.window = window;
        this.ngram = ngram;
        this.candidates = candidates;
        this.observer = observer;
    }

    LookaheadDecoding withObserver(StepObserver observer) {
        return new LookaheadDecoding(target, window, ngram, candidates, observer);
    }

    @Override
    public DecodingTask task(GenerationRequest request) {
        return new Task(request);
    }

    @Override
    public String name() {
        return "lookahead";
    }

    public int window() {
        return window;
    }

    public int ngram() {
        return ngram;
    }

    public int candidates() {
        return candidates;
    }

    /**
     * One request as steps. Invariant between rounds, as in {@link ChainTask}: the target's cache holds the context
     * without its last token, the next tree's root. The prompt but its last token is prefilled in chunks of the
     * step's budget (no logits: the first round feeds the last token and reads after it), one chunk a step; then
     * each step is one round, i.e. one target pass over the tree, verified, the window advanced and the cache
     * compacted in {@link #advance} (on the thread that ran the pass) and the accepted tokens emitted in
     * {@link #endStep}.
     */
    private final class Task implements DecodingTask {
        private final GenerationRequest request;
        private final int[] promptIds;
        private final int[] eos;
        private final DecodeStats.Recorder stats = new DecodeStats.Recorder(name());
        private final int targetContext = target.config().maxContext();
        private final Window jacobi;
        private final NgramPool pool = new NgramPool(ngram, candidates);
        private RequestState state;

        // Target prefill: the prompt without its last token.
        private int prefilled;
        private int prefillPlanned;

        // This step's pass: a prefill chunk or a round.
        private boolean passed;
        private Round round;

        Task(GenerationRequest request) {
            this.request = request;
            this.promptIds = new Generator(target).promptIds(request);
            this.eos = Generator.eosTokenIds(target, request);
            this.jacobi = new Window(promptIds);
        }

        @Override
        public String method() {
            return name();
        }

        @Override
        public List<LanguageModel> models() {
            return List.of(target);
        }

        @Override
        public int blocksNeeded(LanguageModel model) {
            // A round appends the trie (at most G continuations of n − 1 tokens) and every window cell but the root.
            int extra = candidates * (ngram - 1) + (ngram - 1) * window - 1;
            return Tasks.blocks(model, promptIds.length, request.maxTokens(), extra);
        }

        @Override
        public void start(KvSource kv) {
            if (state != null) {
                throw new IllegalStateException("the task has started already");
            }
            state = new RequestState(target, request, promptIds, eos, kv.newSequence(target));
        }

        private boolean prefillDone() {
            return prefilled >= promptIds.length - 1;
        }

        @Override
        public void beginStep() {
            passed = false;
            round = null;
        }

        @Override
        public List<Batch.Entry> next(LanguageModel model, PrefillBudget prefill) {
            if (passed || state.finished()) {
                return List.of();
            }
            if (!prefillDone()) {
                int n = prefill.take(promptIds.length - 1 - prefilled);
                if (n == 0) {
                    return List.of();
                }
                passed = true;
                prefillPlanned = n;
                // Nobody reads this pass's logits: no LM head.
                return List.of(Batch.Entry.continuation(state.kv(), Arrays.copyOfRange(promptIds, prefilled, prefilled + n))
                        .withLogitRows());
            }
            passed = true;
            round = new Round();
            return List.of(round.entry);
        }

        @Override
        public void advance(LanguageModel model, ForwardResult result, long nanos) {
            stats.targetPass();
            if (prefillPlanned > 0) {
                prefilled += prefillPlanned;
                prefillPlanned = 0;
                state.addPrefillNanos(nanos);
            } else {
                round.verify(result, nanos);
            }
        }

        @Override
        public List<TokenEvent> endStep() {
            if (round == null) {
                return List.of();
            }
            List<TokenEvent> events = new ArrayList<>(round.pathTokens.length + 1);
            TreeDecoding.emitPath(state, round.pathTokens, round.verdict, round.logits, events::add);
            state.addDecodeStep(System.nanoTime() - round.start);
            round = null;
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
        }

        @Override
        public void abandon() {
            if (state != null && !state.finished()) {
                state.abandon();
            }
        }

        /** A round: its tree, laid out when planned, then its verdict once the pass is back. */
        private final class Round {
            private final long start = System.nanoTime();
            private final int length = state.contextLength();
            private final int[] context;
            private final int root;
            private final boolean look;
            private final TokenTree trie;
            private final int[] tokens;
            private final int[] parents;
            private final int[] positions;
            private final int[] newest;
            private final int base;
            private final Batch.Entry entry;
            private LazyLogits logits;
            private TreeVerdict verdict;
            private int[] pathTokens;

            Round() {
                int remaining = request.maxTokens() - state.generated();
                int depth = SpeculativeDecoding.roundLength(ngram - 1, remaining, targetContext - length - 1,
                        Integer.MAX_VALUE);
                KvSequence kv = state.kv();
                int free = TreeDrafter.freeRows(kv) - 1; // rows besides the root
                int lookRows = jacobi.rows();
                // Lookahead only pays off for a later step, and its deepest cell sits at length − 1 + (L − 1) + (W − 1).
                look = depth > 0 && jacobi.levels + window - 2 <= targetContext - length && lookRows <= free;
                if (!look) {
                    lookRows = 0;
                }
                context = state.context(depth + 1);
                root = context[length - 1];
                trie = trie(pool.continuations(root), depth, free - lookRows);
                int rows = 1 + trie.size() + lookRows;
                tokens = new int[rows];
                parents = new int[rows];
                positions = new int[rows];
                TreeDecoding.layOut(trie, root, length - 1, tokens, parents, positions);
                newest = look ? jacobi.layOut(1 + trie.size(), length - 1, tokens, parents, positions) : null;
                base = kv.length(); // length − 1: the root goes there
                entry = Batch.Entry.of(kv, tokens, positions, new AttentionShape.Tree(parents)).withAllNormedRows();
                stats.addDraftNanos(System.nanoTime() - start);
            }

            /** Verifies the trie, advances the window and keeps only the root and the accepted path in the cache. */
            void verify(ForwardResult result, long nanos) {
                long t0 = System.nanoTime();
                // The LM head runs at the rows read: the root's with the newest level's (one call), then the trie
                // nodes the verification accepts.
                logits = LazyLogits.of(target, result, 0);
                if (look) {
                    logits.prefetch(prepend(0, newest));
                }
                verdict = TreeDecoding.verify(trie, logits, request.sampling(), context, length, request.streamId());
                int[] path = verdict.path();
                stats.verification(trie.size(), path.length);
                stats.addVerifyNanos(nanos + System.nanoTime() - t0);

                if (look) {
                    long t1 = System.nanoTime();
                    int[] guesses = new int[window];
                    for (int c = 0; c < window; c++) {
                        guesses[c] = Sampler.argmax(logits.row(newest[c]));
                    }
                    jacobi.advance(root, guesses, pool);
                    stats.addDraftNanos(System.nanoTime() - t1);
                }

                // The cache holds [0, length) (the root last), the trie and the lookahead rows; keep the accepted path.
                KvSequence kv = state.kv();
                TreeDecoding.keepPath(kv, base, path);
                pathTokens = trie.tokensOf(path);
                if (observer != null) {
                    observer.afterStep(new Step(state.context(0), tokens, parents, positions, trie.size(),
                            logits.all(), pathTokens, verdict.next(), kv));
                }
            }
        }
    }

    private static int[] prepend(int first, int[] rest) {
        int[] all = new int[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    /**
     * The verification branch: the first {@code depth} tokens of each continuation, in order, merged into a trie
     * (a continuation sharing a prefix with an earlier one adds only its remainder), at most {@code maxNodes} nodes.
     */
    static TokenTree trie(List<int[]> continuations, int depth, int maxNodes) {
        List<Integer> tokens = new ArrayList<>();
        List<Integer> parents = new ArrayList<>();
        for (int[] c : continuations) {
            int node = -1;
            for (int k = 0; k < Math.min(depth, c.length); k++) {
                int child = -1;
                for (int m = node + 1; m < tokens.size(); m++) {
                    if (parents.get(m) == node && tokens.get(m) == c[k]) {
                        child = m;
                        break;
                    }
                }
                if (child < 0) {
                    if (tokens.size() >= maxNodes) {
                        break;
                    }
                    tokens.add(c[k]);
                    parents.add(node);
                    child = tokens.size() - 1;
                }
                node = child;
            }
        }
        return new TokenTree(tokens.stream().mapToInt(Integer::intValue).toArray(),
                parents.stream().mapToInt(Integer::intValue).toArray());
    }

    /**
     * The lookahead branch's 2-D window: {@code levels} Jacobi iterations of {@code window} guesses, oldest first;
     * cell (0, 0) stands for the root, whose token is the step's own.
     */
    private final class Window {
        private final int[][] cells = new int[ngram - 1][];
        private int levels = 1;

        /** Level 0 guesses that the prompt's last tokens come again (any guess keeps the output exact). */
        Window(int[] prompt) {
            cells[0] = new int[window];
            for (int c = 0; c < window; c++) {
                cells[0][c] = prompt[Math.floorMod(prompt.length - window + c, prompt.length)];
            }
        }

        /** Rows the window adds to a step: every cell but (0, 0). */
        int rows() {
            return levels * window - 1;
        }

        /**
         * Writes the window's rows from row {@code first} on (level by level, column by column) with their parents and
         * positions (the root at {@code rootPosition}); returns the rows of the newest level's cells, column by column.
         */
        int[] layOut(int first, int rootPosition, int[] tokens, int[] parents, int[] positions) {
            int[][] rowOf = new int[levels][window];
            int r = first;
            for (int j = 0; j < levels; j++) {
                for (int c = 0; c < window; c++) {
                    if (j == 0 && c == 0) {
                        rowOf[0][0] = 0; // the root
                        continue;
                    }
                    rowOf[j][c] = r;
                    tokens[r] = cells[j][c];
                    parents[r] = j == 0 ? rowOf[0][c - 1] : rowOf[j - 1][c];
                    positions[r] = rootPosition + j + c;
                    r++;
                }
            }
            return rowOf[levels - 1];
        }

        /**
         * Appends the new level {@code guesses} (the target's argmax at the newest level's cells); once full, files
         * each column with its guess as an n-gram and drops the oldest level.
         */
        void advance(int root, int[] guesses, NgramPool pool) {
            if (levels < ngram - 1) {
                cells[levels++] = guesses;
                return;
            }
            for (int c = 0; c < window; c++) {
                int[] gram = new int[ngram];
                for (int j = 0; j < ngram - 1; j++) {
                    gram[j] = j == 0 && c == 0 ? root : cells[j][c];
                }
                gram[ngram - 1] = guesses[c];
                pool.add(gram);
            }
            System.arraycopy(cells, 1, cells, 0, ngram - 2);
            cells[ngram - 2] = guesses;
        }
    }
}
