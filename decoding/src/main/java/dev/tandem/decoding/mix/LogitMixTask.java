package dev.tandem.decoding.mix;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.Tasks;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.LogitMix;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;

/**
 * {@link LogitMixDecoding} as a {@link DecodingTask}. Each view has its own KV sequence: its prompt is prefilled in
 * chunks of the step's prefill budget, then it feeds each accepted token. The pass that ends a view's prompt, and each
 * later one, copies the view's rows into a [mix rows, vocab] tensor on the backend: its next-token logits
 * ({@link Batch.Entry#withLogitsInto}), or the logits of the layers it names ({@link Batch.Entry#withLayerLogitsInto});
 * once every view's rows are there (views whose prompts end in different steps wait for the others), {@link #endStep}
 * mixes the rows on the backend ({@link Backend#mixLogits}) and chooses the token from the mixed row: its argmax on
 * the backend where the request needs only the greedy token, else the row read back and sampled by
 * {@link RequestState#accept}. The token then goes to every view.
 *
 * <p>With a {@link LogitMixDecoding.StateRow}, view 0's pass that fills its row also returns its final normalised
 * hidden state there, and {@link #endStep} writes the row made from it after the views' rows before it mixes.
 */
final class LogitMixTask implements DecodingTask {
    private final String method;
    private final List<LogitMixDecoding.View> views;
    private final LogitMixDecoding.StateRow stateRow; // null: every row of the mix is a view's
    private final LogitMix mix;
    private final GenerationRequest request;
    private final Consumer<float[]> trace;
    private final int[][] prompts;          // each view's sequence before the generated tokens
    private final List<LanguageModel> models;
    private final LanguageModel first;
    private final Backend backend;
    private final DecodeStats.Recorder stats;

    private RequestState state;             // over view 0's sequence
    private final KvSequence[] kvs;          // view 0's is state.kv()
    private final int[] prefilled;           // prompt rows in each view's cache
    private final boolean[] feed;            // the view has yet to feed the last accepted token
    private final boolean[] ready;           // the view's row for the next position is in `rows`
    private final int[] planned;             // rows the view put in this step's pass (0: none)
    private final int[] firstRow;            // the view's first row of `rows` (a view gives one row per layer it names)
    private int stateEntry = -1;             // view 0's entry in this step's pass of its model, when it returns the state
    private float[] normedState;             // view 0's final normalised hidden state at the position to predict
    private Tensor rows;                     // [mix rows, vocab] on the backend
    private Tensor mixed;                    // [1, vocab]

    LogitMixTask(String method, List<LogitMixDecoding.View> views, LogitMixDecoding.StateRow stateRow, LogitMix mix,
                 GenerationRequest request, Consumer<float[]> trace) {
        this.method = method;
        this.views = views;
        this.stateRow = stateRow;
        this.mix = mix;
        this.request = request;
        this.trace = trace;
        int n = views.size();
        this.prompts = new int[n][];
        for (int i = 0; i < n; i++) {
            prompts[i] = LogitMixDecoding.checkedPrompt(views.get(i), request);
        }
        this.models = LogitMixDecoding.distinctModels(views);
        this.first = views.getFirst().model();
        this.backend = first.backend();
        this.stats = new DecodeStats.Recorder(method);
        this.kvs = new KvSequence[n];
        this.prefilled = new int[n];
        this.feed = new boolean[n];
        this.ready = new boolean[n];
        this.planned = new int[n];
        this.firstRow = new int[n];
        for (int i = 1; i < n; i++) {
            firstRow[i] = firstRow[i - 1] + views.get(i - 1).rows();
        }
    }

    @Override
    public String method() {
        return method;
    }

    @Override
    public List<LanguageModel> models() {
        return models;
    }

    @Override
    public int blocksNeeded(LanguageModel model) {
        int blocks = 0;
        for (int i = 0; i < views.size(); i++) {
            if (views.get(i).model() == model) {
                blocks += Tasks.blocks(model, prompts[i].length, request.maxTokens(), 0);
            }
        }
        return blocks;
    }

    @Override
    public void start(KvSource kv) {
        if (state != null) {
            throw new IllegalStateException("the task has started already");
        }
        GenerationRequest firstRequest = new GenerationRequest(null, prompts[0], request.maxTokens(), request.sampling(), request.stop(),
                request.eosTokenIds(), request.logprobs(), request.streamId());
        try {
            state = RequestState.start(first, firstRequest, kv.newSequence(first));
            kvs[0] = state.kv();
            for (int i = 1; i < kvs.length; i++) {
                kvs[i] = kv.newSequence(views.get(i).model());
            }
            int vocab = first.config().vocabSize();
            rows = backend.allocate(mix.rows(), vocab);
            mixed = backend.allocate(1, vocab);
        } catch (RuntimeException | Error e) {
            release();
            throw e;
        }
    }

    @Override
    public void beginStep() {
        Arrays.fill(planned, 0);
        stateEntry = -1;
    }

    @Override
    public List<Batch.Entry> next(LanguageModel model, PrefillBudget prefill) {
        if (state.finished()) {
            return List.of();
        }
        List<Batch.Entry> entries = new ArrayList<>();
        for (int i = 0; i < views.size(); i++) {
            if (views.get(i).model() != model || planned[i] != 0 || ready[i]) {
                continue;
            }
            int[] prompt = prompts[i];
            if (prefilled[i] < prompt.length) {
                int n = prefill.take(prompt.length - prefilled[i]);
                if (n == 0) {
                    continue;
                }
                planned[i] = n;
                Batch.Entry entry = Batch.Entry.continuation(kvs[i], Arrays.copyOfRange(prompt, prefilled[i], prefilled[i] + n));
                // Only the prompt's last chunk keeps logits (of its last row); earlier chunks skip the LM head.
                entries.add(prefilled[i] + n < prompt.length ? entry.withLogitRows() : withState(i, entries.size(), keepRows(entry, i, n - 1), n - 1));
            } else if (feed[i]) {
                planned[i] = 1;
                entries.add(withState(i, entries.size(), keepRows(Batch.Entry.continuation(kvs[i], state.lastToken()), i, 0), 0));
            }
        }
        return entries;
    }

    /** {@code entry} keeping view {@code i}'s rows of the mix, from its row {@code row}, in {@link #rows}. */
    private Batch.Entry keepRows(Batch.Entry entry, int i, int row) {
        LogitMixDecoding.View view = views.get(i);
        if (view.finalOnly()) {
            return entry.withLogitRows().withLogitsInto(rows, firstRow[i], row);
        }
        return entry.withLogitRows().withLayerLogitsInto(rows, firstRow[i], view.decoderLayers(), row);
    }

    /**
     * {@code entry} (view {@code view}'s, the {@code index}-th of the pass) also returning its final normalised state at
     * {@code row}, where the mix has a state row.
     */
    private Batch.Entry withState(int view, int index, Batch.Entry entry, int row) {
        if (view != 0 || stateRow == null) {
            return entry;
        }
        stateEntry = index;
        return entry.withNormedRows(row);
    }

    @Override
    public void advance(LanguageModel model, ForwardResult result, long nanos) {
        if (model == first) {
            stats.targetPass();
        } else {
            stats.draftPass();
            stats.addDraftNanos(nanos);
        }
        boolean decode = false;
        for (int i = 0; i < views.size(); i++) {
            if (views.get(i).model() != model || planned[i] == 0) {
                continue;
            }
            if (prefilled[i] < prompts[i].length) {
                prefilled[i] += planned[i];
                ready[i] = prefilled[i] == prompts[i].length;
            } else {
                feed[i] = false;
                ready[i] = true;
                decode = true;
            }
        }
        if (model == first && stateEntry >= 0) {
            normedState = result.normedHidden(stateEntry, 0);
            stateEntry = -1;
        }
        if (model == first) {
            if (decode) {
                state.addDecodeStep(nanos);
                stats.addVerifyNanos(nanos);
            } else {
                state.addPrefillNanos(nanos);
            }
        }
    }

    @Override
    public List<TokenEvent> endStep() {
        for (boolean r : ready) {
            if (!r) {
                return List.of();
            }
        }
        Arrays.fill(ready, false);
        if (stateRow != null) {
            backend.writeRows(new float[][] {stateRow.of(normedState)}, rows, mix.rows() - 1); // after every view's rows
        }
        backend.mixLogits(rows, mix, mixed);
        float[] row = null;
        if (trace != null) {
            row = backend.readRows(mixed, 0, 1)[0];
            trace.accept(row.clone());
        }
        TokenEvent event;
        int greedy = state.needsOnlyGreedyToken() && row == null ? backend.argmax(mixed)[0] : -1;
        if (greedy >= 0) {
            event = state.acceptToken(greedy, null);
        } else {
            event = state.accept(row != null ? row : backend.readRows(mixed, 0, 1)[0]);
        }
        if (!state.finished() && LogitMixDecoding.anotherViewIsFull(views, prompts, state.generated())) {
            state.end(FinishReason.CONTEXT_FULL);
        }
        if (state.finished()) {
            release();
        } else {
            Arrays.fill(feed, true);
        }
        return List.of(event);
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
        release();
    }

    @Override
    public void abandon() {
        if (state != null && !state.finished()) {
            state.abandon();
        }
        release();
    }

    /** Closes the other views' sequences (view 0's closes with the state) and frees the rows; idempotent. */
    private void release() {
        for (int i = 1; i < kvs.length; i++) {
            if (kvs[i] != null) {
                kvs[i].close();
            }
        }
        if (rows != null) {
            backend.free(rows);
            rows = null;
        }
        if (mixed != null) {
            backend.free(mixed);
            mixed = null;
        }
    }
}
