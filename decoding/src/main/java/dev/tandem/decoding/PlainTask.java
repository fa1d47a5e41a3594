package dev.tandem.decoding;

import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;
import java.util.List;

/**
 * Plain decoding as a {@link DecodingTask}: the prompt in chunks (only the last chunk asks for logits,
 * of its last row), then one row per step, each step's logits sampled by {@link RequestState#accept}. Where
 * the next token is the greedy one and nothing else is read from the logits
 * ({@link RequestState#needsOnlyGreedyToken}), a step asks for the row's greedy token instead, so the logits
 * stay on the model's backend (on a GPU, one id crosses to the host instead of a row of the vocabulary).
 */
final class PlainTask implements DecodingTask {
    private final LanguageModel model;
    private final GenerationRequest request;
    private final int[] promptIds;
    private final int[] eos;
    private RequestState state;
    private int prefilled;
    private boolean passed;   // this step's pass of the model is planned
    private int planned;      // prompt rows in it (0: a decode row)
    private float[] logits;   // the logits this step's pass ended with, to sample from
    private int greedyToken = -1; // or the greedy token it sent back instead (RequestState.needsOnlyGreedyToken)

    PlainTask(LanguageModel model, GenerationRequest request) {
        this.model = model;
        this.request = request;
        this.promptIds = Generator.promptIds(model, request);
        this.eos = Generator.eosTokens(model, request);
    }

    @Override
    public String method() {
        return "plain";
    }

    @Override
    public List<LanguageModel> models() {
        return List.of(model);
    }

    @Override
    public int blocksNeeded(LanguageModel m) {
        return Tasks.blocks(m, promptIds.length, request.maxTokens(), 0);
    }

    @Override
    public void start(KvSource kv) {
        if (state != null) {
            throw new IllegalStateException("the task has started already");
        }
        state = new RequestState(model, request, promptIds, eos, kv.newSequence(model));
    }

    /** The request's bookkeeping (Engine reads it for its stats). */
    RequestState state() {
        return state;
    }

    int[] promptIds() {
        return promptIds;
    }

    @Override
    public void beginStep() {
        passed = false;
        logits = null;
        greedyToken = -1;
    }

    @Override
    public List<Batch.Entry> next(LanguageModel m, PrefillBudget prefill) {
        if (passed || state.finished()) {
            return List.of();
        }
        if (prefilled < promptIds.length) {
            int n = prefill.take(promptIds.length - prefilled);
            if (n == 0) {
                return List.of();
            }
            passed = true;
            planned = n;
            Batch.Entry entry = Batch.Entry.continuation(state.kv(), Arrays.copyOfRange(promptIds, prefilled, prefilled + n));
            // Only the prompt's last chunk needs logits (of its last row); earlier chunks skip the LM head.
            return List.of(prefilled + n < promptIds.length ? entry.withLogitRows() : lastRowOutput(entry, n - 1));
        }
        passed = true;
        planned = 0;
        return List.of(lastRowOutput(Batch.Entry.continuation(state.kv(), state.lastToken()), 0));
    }

    /** What the step needs of {@code row}: its greedy token alone where that decides the next token, else its logits. */
    private Batch.Entry lastRowOutput(Batch.Entry entry, int row) {
        return state.needsOnlyGreedyToken() ? entry.withLogitRows().withGreedyRows(row) : entry.withLogitRows(row);
    }

    /** The step's outcome from its pass: the greedy token, or the logits to sample from (also when the row has no greedy token). */
    private void takeOutput(ForwardResult result) {
        if (result.greedyRows(0) > 0) {
            greedyToken = result.greedyToken(0, 0);
            if (greedyToken < 0) {
                logits = result.greedyRowLogits(0, 0); // sampling it says why there is no token
            }
        } else {
            logits = result.lastLogits(0);
        }
    }

    @Override
    public void advance(LanguageModel m, ForwardResult result, long nanos) {
        if (planned > 0) {
            prefilled += planned;
            state.addPrefillNanos(nanos);
            if (prefilled == promptIds.length) {
                takeOutput(result);
            }
        } else {
            state.addDecodeStep(nanos);
            takeOutput(result);
        }
    }

    @Override
    public List<TokenEvent> endStep() {
        if (greedyToken >= 0) {
            int token = greedyToken;
            greedyToken = -1;
            return List.of(state.acceptToken(token, null));
        }
        if (logits == null) {
            return List.of();
        }
        float[] l = logits;
        logits = null;
        return List.of(state.accept(l));
    }

    @Override
    public boolean finished() {
        return state != null && state.finished();
    }

    @Override
    public GenerationResult result() {
        return state.result();
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
}
