package dev.tandem.decoding;

import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.DeviceSampling;
import dev.tandem.runtime.Placement;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.rng.RngPurpose;
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
 * stay on the model's backend (on a GPU, one id crosses to the host instead of a row of the vocabulary); where
 * sampling sets a temperature alone on a device backend, the row stays there and the token is drawn there
 * ({@link DeviceSampling}), the same draw as {@link dev.tandem.decoding.sampling.Sampler#sample}'s.
 *
 * <p>The prompt may also come as rows ({@link Generator#task(GenerationRequest, int[], float[][])}): a row is a token
 * id or a vector fed as its input embedding (REFRAG's compressed chunks), each one position, prefilled in the same
 * chunks ({@link Batch.Entry#continuationOfRows}).
 */
final class PlainTask implements DecodingTask {
    private final LanguageModel model;
    private final GenerationRequest request;
    private final int[] promptIds;
    private final float[][] promptVectors; // null, or per prompt row its input vector (null at a token row)
    private final int[] eos;
    private RequestState state;
    private int prefilled;
    private boolean passed;   // this step's pass of the model is planned
    private int planned;      // prompt rows in it (0: a decode row)
    private float[] logits;   // the logits this step's pass ended with, to sample from
    private int token = -1;   // or the token the backend chose: the greedy one it sent back (RequestState.needsOnlyGreedyToken)
                              // or one drawn where the logits are (deviceRow)
    // Sampling with a temperature alone on a device backend: the step's row of logits stays here and is drawn from there.
    private Tensor deviceRow;
    private DeviceSampling deviceSampling;

    PlainTask(LanguageModel model, GenerationRequest request) {
        this(model, request, Generator.promptIds(model, request), null);
    }

    /** After the prompt rows {@code promptIds} / {@code promptVectors}, checked by the caller (see {@link Generator#task(GenerationRequest, int[], float[][])}). */
    PlainTask(LanguageModel model, GenerationRequest request, int[] promptIds, float[][] promptVectors) {
        this.model = model;
        this.request = request;
        this.promptIds = promptIds;
        this.promptVectors = promptVectors;
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
        Backend backend = model.backend();
        if (backend instanceof DeviceSampling sampling && backend.placement() == Placement.DEVICE
                && request.sampling().temperatureOnly() && request.logprobs() == 0) {
            deviceRow = backend.allocate(1, model.config().vocabSize());
            deviceSampling = sampling;
        }
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
        token = -1;
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
            int[] ids = Arrays.copyOfRange(promptIds, prefilled, prefilled + n);
            Batch.Entry entry = promptVectors == null ? Batch.Entry.continuation(state.kv(), ids)
                    : Batch.Entry.continuationOfRows(state.kv(), ids, Arrays.copyOfRange(promptVectors, prefilled, prefilled + n));
            // Only the prompt's last chunk needs logits (of its last row); earlier chunks skip the LM head.
            return List.of(prefilled + n < promptIds.length ? entry.withLogitRows() : lastRowOutput(entry, n - 1));
        }
        passed = true;
        planned = 0;
        return List.of(lastRowOutput(Batch.Entry.continuation(state.kv(), state.lastToken()), 0));
    }

    /**
     * What the step needs of {@code row}: its greedy token alone where that decides the next token; its logits kept
     * on the device where the token is drawn there; else its logits.
     */
    private Batch.Entry lastRowOutput(Batch.Entry entry, int row) {
        if (deviceRow != null) {
            return entry.withLogitRows().withLogitsInto(deviceRow, 0, row);
        }
        return state.needsOnlyGreedyToken() ? entry.withLogitRows().withGreedyRows(row) : entry.withLogitRows(row);
    }

    /** The step's outcome from its pass: the backend's token, or the logits to sample from (also when the row has no greedy token). */
    private void takeOutput(ForwardResult result) {
        if (deviceRow != null) {
            // Sampler.sample's draw for the token at position contextLength, made where the logits are.
            SamplingParams p = request.sampling();
            token = deviceSampling.sampleWithTemperature(deviceRow, p.temperature(), p.seed(), new long[] {request.streamId()},
                    new long[] {state.contextLength()}, RngPurpose.SAMPLE, false)[0];
        } else if (result.greedyRows(0) > 0) {
            token = result.greedyToken(0, 0);
            if (token < 0) {
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
        List<TokenEvent> events;
        if (token >= 0) {
            int t = token;
            token = -1;
            events = List.of(state.acceptToken(t, null));
        } else if (logits == null) {
            return List.of();
        } else {
            float[] l = logits;
            logits = null;
            events = List.of(state.accept(l));
        }
        if (state.finished()) {
            releaseDeviceRow();
        }
        return events;
    }

    private void releaseDeviceRow() {
        if (deviceRow != null) {
            model.backend().free(deviceRow);
            deviceRow = null;
        }
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
        releaseDeviceRow();
    }

    @Override
    public void abandon() {
        if (state != null && !state.finished()) {
            state.abandon();
        }
        releaseDeviceRow();
    }
}
