package dev.tandem.decoding.mix;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.Tasks;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;

/**
 * {@link LayerContrastDecoding} as a {@link DecodingTask}: the prompt in chunks (only the last asks for outputs, of its
 * last row), then one row a step; the pass that ends the prompt, and each later one, returns the row's final logits
 * and its candidate layers' logits ({@link Batch.Entry#withLayerLogits}), from which {@link #endStep} builds the
 * contrast row and hands it to {@link RequestState#accept} (the request's processors and sampler).
 */
final class LayerContrastTask implements DecodingTask {
    private final LanguageModel model;
    private final int[] layers;
    private final double alpha;
    private final GenerationRequest request;  // with the method's repetition penalty where the request set none
    private final Consumer<float[]> trace;
    private final int[] promptIds;
    private final DecodeStats.Recorder stats = new DecodeStats.Recorder("dola");
    private RequestState state;
    private int prefilled;
    private boolean passed;   // this step's pass is planned
    private int planned;      // prompt rows in it (0: a decode row)
    private float[] scores;   // the contrast row this step's pass ended with

    LayerContrastTask(LanguageModel model, int[] layers, double alpha, float repetitionPenalty, GenerationRequest request,
                      Consumer<float[]> trace) {
        this.model = model;
        this.layers = layers;
        this.alpha = alpha;
        this.trace = trace;
        this.promptIds = new Generator(model).promptIds(request);
        var sampling = request.sampling();
        if (sampling.repetitionPenalty() == 1f) {
            sampling = sampling.withRepetitionPenalty(repetitionPenalty);
        }
        this.request = new GenerationRequest(null, promptIds, request.maxTokens(), sampling, request.stop(), request.eosTokenIds(),
                request.logprobs(), request.streamId());
    }

    @Override
    public String method() {
        return "dola";
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
        state = RequestState.start(model, request, kv.newSequence(model));
    }

    @Override
    public void beginStep() {
        passed = false;
        scores = null;
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
            // Only the prompt's last chunk needs outputs (of its last row); earlier chunks skip the LM head.
            return List.of(prefilled + n < promptIds.length ? entry.withLogitRows() : entry.withLayerLogits(layers, n - 1));
        }
        passed = true;
        planned = 0;
        return List.of(Batch.Entry.continuation(state.kv(), state.lastToken()).withLayerLogits(layers, 0));
    }

    @Override
    public void advance(LanguageModel m, ForwardResult result, long nanos) {
        stats.targetPass();
        if (planned > 0) {
            prefilled += planned;
            state.addPrefillNanos(nanos);
            if (prefilled < promptIds.length) {
                return;
            }
        } else {
            state.addDecodeStep(nanos);
        }
        float[][] candidates = new float[layers.length][];
        for (int i = 0; i < layers.length; i++) {
            candidates[i] = result.layerLogits(0, layers[i]);
        }
        scores = LayerContrastDecoding.contrast(result.lastLogits(0), candidates, alpha, new int[1]);
    }

    @Override
    public List<TokenEvent> endStep() {
        if (scores == null) {
            return List.of();
        }
        float[] row = scores;
        scores = null;
        if (trace != null) {
            trace.accept(row.clone());
        }
        return List.of(state.accept(row));
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
}
