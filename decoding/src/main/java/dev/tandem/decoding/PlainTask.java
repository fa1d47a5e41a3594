package dev.tandem.decoding;

import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;
import java.util.List;

/**
 * Plain decoding as a {@link DecodingTask}: the prompt in chunks (only the last chunk asks for logits,
 * of its last row), then one row per step, each step's logits sampled by {@link RequestState#accept}.
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
            return List.of(prefilled + n < promptIds.length ? entry.withLogitRows() : entry);
        }
        passed = true;
        planned = 0;
        return List.of(Batch.Entry.continuation(state.kv(), state.lastToken()));
    }

    @Override
    public void advance(LanguageModel m, ForwardResult result, long nanos) {
        if (planned > 0) {
            prefilled += planned;
            state.addPrefillNanos(nanos);
            if (prefilled == promptIds.length) {
                logits = result.lastLogits(0);
            }
        } else {
            state.addDecodeStep(nanos);
            logits = result.lastLogits(0);
        }
    }

    @Override
    public List<TokenEvent> endStep() {
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
