package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

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

    /** Not yet a step machine: runs only alone, through {@link #generate}. */
    @Override
    public DecodingTask task(GenerationRequest request) {
        throw new UnsupportedOperationException(name() + " does not run as steps yet");
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

    @Override
    public GenerationResult generate(GenerationRequest request, Consumer<TokenEvent> listener) {
        DecodeStats.Recorder stats = new DecodeStats.Recorder(name());
        RequestState state = RequestState.start(target, request);
        SamplingParams sp = request.sampling();
        int targetContext = target.config().maxContext();
        Window jacobi = new Window(state.promptIds());
        NgramPool pool = new NgramPool(ngram, candidates);
        try {
            SpeculativeDecoding.prefillAllButLast(target, state, stats);
            while (!state.finished()) {
                long stepStart = System.nanoTime();
                int length = state.contextLength();
                int remaining = request.maxTokens() - state.generated();
                int depth = SpeculativeDecoding.roundLength(ngram - 1, remaining, targetContext - length - 1,
                        Integer.MAX_VALUE);
                KvSequence kv = state.kv();
                int free = TreeDrafter.freeRows(kv) - 1; // rows besides the root
                int lookRows = jacobi.rows();
                // Lookahead only pays off for a later step, and its deepest cell sits at length − 1 + (L − 1) + (W − 1).
                boolean look = depth > 0 && jacobi.levels + window - 2 <= targetContext - length && lookRows <= free;
                if (!look) {
                    lookRows = 0;
                }
                int[] context = state.context(depth + 1);
                int root = context[length - 1];
                TokenTree trie = trie(pool.continuations(root), depth, free - lookRows);
                int n = trie.size();
                stats.addDraftNanos(System.nanoTime() - stepStart);

                long t0 = System.nanoTime();
                int rows = 1 + n + lookRows;
                int[] tokens = new int[rows];
                int[] parents = new int[rows];
                int[] positions = new int[rows];
                TreeDecoding.layOut(trie, root, length - 1, tokens, parents, positions);
                int[] newest = look ? jacobi.layOut(1 + n, length - 1, tokens, parents, positions) : null;
                int base = kv.length(); // length − 1: the root goes there
                ForwardResult fr = target.forward(Batch.of(Batch.Entry.of(kv, tokens, positions,
                        new AttentionShape.Tree(parents)).withAllNormedRows()));
                stats.targetPass();
                // The LM head runs at the rows read: the root's with the newest level's (one call), then the trie
                // nodes the verification accepts.
                LazyLogits logits = LazyLogits.of(target, fr, 0);
                if (look) {
                    logits.prefetch(prepend(0, newest));
                }
                TreeVerdict verdict = TreeDecoding.verify(trie, logits, sp, context, length, request.streamId());
                int[] path = verdict.path();
                int accepted = path.length;
                stats.verification(n, accepted);
                stats.addVerifyNanos(System.nanoTime() - t0);

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
                TreeDecoding.keepPath(kv, base, path);
                int[] pathTokens = trie.tokensOf(path);
                if (observer != null) {
                    observer.afterStep(new Step(state.context(0), tokens, parents, positions, n,
                            logits.all(), pathTokens, verdict.next(), kv));
                }
                TreeDecoding.emitPath(state, pathTokens, verdict, logits, listener);
                state.addDecodeStep(System.nanoTime() - stepStart);
            }
            return state.result().withDecodeStats(stats.build(state.result().generatedIds().length));
        } catch (RuntimeException | Error e) {
            state.abandon();
            throw e;
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
