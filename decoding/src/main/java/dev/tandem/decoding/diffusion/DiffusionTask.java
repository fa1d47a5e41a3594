package dev.tandem.decoding.diffusion;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.Usage;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.RowSelection;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One request's canvas filled by a masked-diffusion model, as a {@link DecodingTask}: the prompt followed by
 * {@code genLength} mask tokens; each step one bidirectional pass over the whole sequence (without a cache: every
 * position's keys and values change when a token is committed; with one, over the rows it does not reuse, see
 * {@link DiffusionCache}), asking only for the {@link LogitSummary} of the masked positions of the current block; the rule scores them and the step commits the chosen ones, each with its
 * most likely token. Blocks are filled left to right. The text is the canvas read left to right, which the task
 * emits once the canvas is full (stopping at the first EOS, as plain decoding's text does); the result's
 * {@code generatedIds} are the whole canvas.
 */
final class DiffusionTask implements DecodingTask {
    private final LanguageModel model;
    private final DiffusionParams params;
    private final GenerationRequest request;
    private final int[] promptIds;
    private final int[] eos;
    private final int mask;
    private final DecodeStats.Recorder stats = new DecodeStats.Recorder(DiffusionDecoding.NAME);
    private final List<int[][]> trace = new ArrayList<>();
    private RequestState state;
    private int[] sequence;        // the prompt, then the canvas
    private int block;             // the block being filled
    private int stepInBlock;       // steps taken in it
    private int[] counts;          // positions each step of the block commits (fixed-count rules)
    private int[] candidates;      // the masked positions the planned pass summarises, or null when none is planned
    private int fedFrom;           // the first position the planned pass feeds (the rows before it are cached)
    private boolean refresh = true; // the next pass is the block's full one (always, without a cache)
    private int step;              // steps taken in all
    private boolean filled;
    private int[] lastToken;       // CCD: per position, its token at the block's previous pass
    private int[] streak;          // CCD: per position, passes its token has held among the most confident
    private Tensor kept;           // the candidates' logits, kept on the model's backend for selectRows

    DiffusionTask(LanguageModel model, DiffusionParams params, GenerationRequest request, int[] promptIds, int[] eos) {
        this.model = model;
        this.params = params;
        this.request = request;
        this.promptIds = promptIds;
        this.eos = eos;
        this.mask = model.config().maskTokenId();
    }

    @Override
    public String method() {
        return DiffusionDecoding.NAME;
    }

    @Override
    public List<LanguageModel> models() {
        return List.of(model);
    }

    @Override
    public int blocksNeeded(LanguageModel m) {
        return m.kvCache().blocksNeeded(promptIds.length + params.genLength());
    }

    @Override
    public void start(KvSource kv) {
        if (state != null) {
            throw new IllegalStateException("the task has started already");
        }
        state = new RequestState(model, request, promptIds, eos, kv.newSequence(model));
        sequence = Arrays.copyOf(promptIds, promptIds.length + params.genLength());
        Arrays.fill(sequence, promptIds.length, sequence.length, mask);
        beginBlock(0);
    }

    private void beginBlock(int b) {
        block = b;
        stepInBlock = 0;
        refresh = true;
        if (params.rule() == UnmaskRule.CCD) { // CCD's histories start again with each block
            lastToken = new int[sequence.length];
            streak = new int[sequence.length];
        }
        counts = params.rule() == UnmaskRule.THRESHOLD ? null
                : Unmasking.transferCounts(params.blockLength(), params.steps() / params.blocks());
    }

    @Override
    public void beginStep() {
        candidates = null;
    }

    @Override
    public List<Batch.Entry> next(LanguageModel m, PrefillBudget prefill) {
        if (filled || candidates != null || state.finished()) {
            return List.of();
        }
        // Skip the steps LLaDA's spread gives nothing to commit (more steps than positions): they change nothing.
        while (counts != null && stepInBlock < counts.length && counts[stepInBlock] == 0) {
            stepInBlock++;
        }
        int from = promptIds.length + block * params.blockLength();
        int[] masked = new int[params.blockLength()];
        int n = 0;
        for (int p = from; p < from + params.blockLength(); p++) {
            if (sequence[p] == mask) {
                masked[n++] = p;
            }
        }
        candidates = Arrays.copyOf(masked, n);
        // What this pass feeds: the whole sequence (no cache, or the block's first pass, which refreshes the cache);
        // with a prefix cache the block and everything after it; with a dual cache the block alone. Fed rows attend
        // to the cached ones and to each other (bidirectional); their positions are explicit, so their order in the
        // cache does not matter.
        int to = sequence.length;
        if (refresh) {
            state.kv().truncate(0);
            fedFrom = 0;
        } else {
            fedFrom = from;
            if (params.cache() == DiffusionCache.DUAL) {
                to = from + params.blockLength();
            }
        }
        int[] rows = Arrays.copyOfRange(sequence, fedFrom, to);
        int[] positions = new int[rows.length];
        Arrays.setAll(positions, i -> fedFrom + i);
        int[] summaryRows = new int[n];
        for (int i = 0; i < n; i++) {
            summaryRows[i] = candidates[i] - fedFrom;
        }
        // One pass over what it feeds (a bidirectional pass cannot be chunked): it does not draw on the prefill budget.
        // Greedy: only the summaries come back; with Gumbel noise, the rows of logits (the noise is per token).
        // A rule that orders by a score of each row and commits the best (low-confidence, entropy, margin, threshold)
        // keeps the candidates' logits where they are and chooses there (Backend.selectRows): only the chosen positions
        // and tokens come back.
        Batch.Entry entry = Batch.Entry.of(state.kv(), rows, positions, AttentionShape.BIDIRECTIONAL);
        if (noisy()) {
            return List.of(entry.withLogitRows(summaryRows));
        }
        if (selectionScore() != null) {
            if (kept == null) {
                kept = model.backend().allocate(params.blockLength(), model.config().vocabSize());
            }
            return List.of(entry.withLogitRows().withLogitsInto(kept, 0, summaryRows));
        }
        return List.of(entry.withLogitRows().withSummaryRows(2, summaryRows));
    }

    /** The score the rule commits the best of, where the backend can choose; null for the rules that need every row's token. */
    private RowSelection.Score selectionScore() {
        return switch (params.rule()) {
            case LOW_CONFIDENCE, THRESHOLD -> RowSelection.Score.TOP_PROBABILITY;
            case ENTROPY -> RowSelection.Score.NEGATIVE_ENTROPY;
            case MARGIN -> RowSelection.Score.MARGIN;
            case RANDOM, CCD -> null;
        };
    }

    /** Frees the rows kept on the model's backend for {@link Backend#selectRows}. */
    private void releaseKept() {
        if (kept != null) {
            model.backend().free(kept);
            kept = null;
        }
    }

    /** True when the committed tokens are Gumbel-noised argmaxes (a temperature above 0). */
    private boolean noisy() {
        return request.sampling().temperature() > 0;
    }

    /** Leaves in the KV sequence what the next pass of the block reuses, after a pass that fed from {@code fedFrom}. */
    private void keepCached() {
        int from = promptIds.length + block * params.blockLength();
        int to = from + params.blockLength();
        switch (params.cache()) {
            case NONE -> state.kv().truncate(0);
            case PREFIX -> state.kv().truncate(from);
            case DUAL -> {
                if (fedFrom == 0) {
                    // The block's full pass: keep the positions before the block and after it, dropping the block.
                    int[] after = new int[sequence.length - to];
                    Arrays.setAll(after, i -> to + i);
                    state.kv().compact(from, after);
                } else {
                    state.kv().truncate(from + sequence.length - to);
                }
            }
        }
    }

    @Override
    public void advance(LanguageModel m, ForwardResult result, long nanos) {
        stats.targetPass();
        state.addDecodeStep(nanos);
        keepCached();
        refresh = params.cache() == DiffusionCache.NONE;
        int n = candidates.length;
        if (!noisy() && selectionScore() != null) {
            RowSelection selection = model.backend().selectRows(kept.rows(0, n), selectionScore(), stepCount(),
                    params.rule() == UnmaskRule.THRESHOLD ? params.threshold() : 0);
            commit(selection.rows(), selection.tokens(), n);
            return;
        }
        double[] scores = new double[n];
        int[] tokens = new int[n];
        long seed = request.sampling().seed();
        long gumbelKey = noisy() ? Unmasking.gumbelKey(seed, request.streamId(), step) : 0;
        for (int i = 0; i < n; i++) {
            LogitSummary s;
            if (noisy()) {
                float[] row = result.logits(0, i);
                s = LogitSummary.of(row, 2);
                Sampler.greedyToken(s); // a row without a softmax is refused as greedy decoding refuses it
                tokens[i] = Unmasking.gumbelArgmax(row, request.sampling().temperature(), gumbelKey, request.streamId(), candidates[i]);
                scores[i] = params.rule() == UnmaskRule.LOW_CONFIDENCE || params.rule() == UnmaskRule.THRESHOLD
                        ? Math.exp(row[tokens[i]] - (double) s.max()) / s.z() // the chosen token's probability, as LLaDA scores it
                        : Unmasking.score(params.rule(), s, seed, request.streamId(), candidates[i], step);
            } else {
                s = result.summary(0, i);
                tokens[i] = Sampler.greedyToken(s);
                scores[i] = Unmasking.score(params.rule(), s, seed, request.streamId(), candidates[i], step);
            }
        }
        int[] chosen = switch (params.rule()) {
            case THRESHOLD -> Unmasking.choose(scores, candidates, 0, params.threshold());
            case CCD -> Unmasking.chooseConsistent(scores, candidates, tokens, stepCount(), params.ccdWindow(), lastToken, streak);
            default -> Unmasking.choose(scores, candidates, stepCount(), 0);
        };
        int[] chosenTokens = new int[chosen.length];
        for (int i = 0; i < chosen.length; i++) {
            chosenTokens[i] = tokens[chosen[i]];
        }
        commit(chosen, chosenTokens, n);
    }

    /** Positions this step of the block commits under LLaDA's spread (0 for threshold, which has none). */
    private int stepCount() {
        return counts == null ? 0 : stepInBlock < counts.length ? counts[stepInBlock] : 1;
    }

    /** Commits {@code tokens[i]} at candidate {@code chosen[i]} (of {@code n}), records the step, moves to the next block when full. */
    private void commit(int[] chosen, int[] tokens, int n) {
        int[][] committed = new int[chosen.length][];
        for (int i = 0; i < chosen.length; i++) {
            int c = chosen[i];
            sequence[candidates[c]] = tokens[i];
            committed[i] = new int[] {candidates[c], tokens[i]};
        }
        trace.add(committed);
        step++;
        stepInBlock++;
        if (n - chosen.length == 0) { // the block is full
            if (block + 1 < params.blocks()) {
                beginBlock(block + 1);
            } else {
                filled = true;
            }
        }
    }

    @Override
    public List<TokenEvent> endStep() {
        candidates = null;
        if (!filled || state.finished()) {
            return List.of();
        }
        releaseKept();
        // The canvas is full: its text, read left to right, through the same bookkeeping as plain decoding's tokens.
        List<TokenEvent> events = new ArrayList<>();
        for (int p = promptIds.length; p < sequence.length && !state.finished(); p++) {
            events.add(state.acceptToken(sequence[p], null));
        }
        if (!state.finished()) {
            state.end(FinishReason.MAX_TOKENS);
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
        int[] canvas = Arrays.copyOfRange(sequence, promptIds.length, sequence.length);
        return new GenerationResult(r.promptIds(), canvas, r.text(), r.finishReason(), new Usage(promptIds.length, canvas.length),
                r.stats(), r.logprobs(), stats.build(canvas.length));
    }

    /** Per step, the [position, token] pairs it committed, in the order committed (positions count the prompt). */
    List<int[][]> trace() {
        return trace;
    }

    @Override
    public void end(FinishReason reason) {
        state.end(reason);
        releaseKept();
    }

    @Override
    public void abandon() {
        if (state != null && !state.finished()) {
            state.abandon();
        }
        releaseKept();
    }
}
