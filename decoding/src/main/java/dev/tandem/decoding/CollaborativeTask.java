package dev.tandem.decoding;

import dev.tandem.decoding.CollaborativeDecoding.Rule;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;
import java.util.List;

/**
 * FS-GEN routing ({@link CollaborativeDecoding}) as a {@link DecodingTask}: each step runs one pass, of
 * the small model or of the large one. The small model's passes are its prompt (in chunks; the last one
 * with logits) and then each accepted token; after one that ends with logits, {@link #endStep} routes the
 * position: a confident small model's token is accepted there; otherwise the next step runs the large
 * model on the tokens its cache lacks (a long catch-up in chunks of the prefill budget, over several steps)
 * and the endStep of its last chunk takes the large model's token.
 */
final class CollaborativeTask implements DecodingTask {
    private enum Pass { NONE, SMALL, LARGE }

    private final LanguageModel small;
    private final LanguageModel large;
    private final Rule rule;
    private final double threshold;
    private final GenerationRequest request;
    private final int[] promptIds;
    private final int[] eos;
    private final DecodeStats.Recorder stats;
    private final int largeContext;
    private RequestState state;  // over the small model's sequence
    private KvSequence largeKv;

    private int prefilled;       // prompt rows in the small model's cache
    private boolean feedToken;   // the small model has yet to feed the last accepted token
    private boolean routed;      // the position waits for the large model's token
    private int smallToken;      // the small model's choice at a routed position
    private long positionStart;  // when the position's small logits came

    // This step's pass.
    private Pass pass;
    private boolean planned;
    private int plannedRows;     // prompt or catch-up rows in it (0: the small model's token row)
    private float[] logits;      // the logits it ended with, when it ended a prompt, a token or a catch-up
    private long largeNanos;     // the routed position's large passes so far

    CollaborativeTask(LanguageModel small, LanguageModel large, Rule rule, double threshold, GenerationRequest request) {
        this.small = small;
        this.large = large;
        this.rule = rule;
        this.threshold = threshold;
        this.request = request;
        this.promptIds = Generator.promptIds(small, request);
        this.eos = Generator.eosTokens(small, request);
        this.stats = new DecodeStats.Recorder("collab");
        this.largeContext = large.config().maxContext();
    }

    @Override
    public String method() {
        return "collab";
    }

    @Override
    public List<LanguageModel> models() {
        return small == large ? List.of(large) : List.of(large, small);
    }

    @Override
    public int blocksNeeded(LanguageModel model) {
        int blocks = Tasks.blocks(model, promptIds.length, request.maxTokens(), 0);
        return small == large ? 2 * blocks : blocks; // two sequences in one cache
    }

    @Override
    public void start(KvSource kv) {
        if (state != null) {
            throw new IllegalStateException("the task has started already");
        }
        state = new RequestState(small, request, promptIds, eos, kv.newSequence(small));
        try {
            largeKv = kv.newSequence(large);
        } catch (RuntimeException | Error e) {
            state.abandon();
            throw e;
        }
    }

    @Override
    public void beginStep() {
        logits = null;
        planned = false;
        // Chosen here, so that a call for the other model (maybe on another thread) reads nothing this step writes.
        if (state.finished()) {
            pass = Pass.NONE;
        } else if (routed) {
            pass = Pass.LARGE;
        } else {
            pass = prefilled < promptIds.length || feedToken ? Pass.SMALL : Pass.NONE;
        }
    }

    @Override
    public List<Batch.Entry> next(LanguageModel model, PrefillBudget prefill) {
        if (pass == Pass.LARGE && model == large && !planned) {
            int length = state.contextLength();
            int rest = length - largeKv.length();
            // The catch-up after a confident stretch is a few tokens; only a prompt's worth is chunked.
            int n = rest > 1 ? prefill.take(rest) : rest;
            if (n == 0) {
                return List.of();
            }
            planned = true;
            plannedRows = n;
            int from = largeKv.length();
            Batch.Entry entry = Batch.Entry.continuation(largeKv, Arrays.copyOfRange(state.context(0), from, from + n));
            return List.of(n < rest ? entry.withLogitRows() : entry);
        }
        if (pass == Pass.SMALL && model == small && !planned) {
            if (prefilled < promptIds.length) {
                int n = prefill.take(promptIds.length - prefilled);
                if (n == 0) {
                    return List.of();
                }
                planned = true;
                plannedRows = n;
                Batch.Entry entry = Batch.Entry.continuation(state.kv(), Arrays.copyOfRange(promptIds, prefilled, prefilled + n));
                // Only the prompt's last chunk needs logits (of its last row); earlier chunks skip the LM head.
                return List.of(prefilled + n < promptIds.length ? entry.withLogitRows() : entry);
            }
            planned = true;
            plannedRows = 0;
            return List.of(Batch.Entry.continuation(state.kv(), state.lastToken()));
        }
        return List.of();
    }

    @Override
    public void advance(LanguageModel model, ForwardResult result, long nanos) {
        if (pass == Pass.SMALL) {
            stats.draftPass();
            stats.addDraftNanos(nanos);
            if (plannedRows > 0) {
                prefilled += plannedRows;
                state.addPrefillNanos(nanos);
                if (prefilled == promptIds.length) {
                    logits = result.lastLogits(0);
                }
            } else {
                feedToken = false;
                logits = result.lastLogits(0);
            }
        } else if (pass == Pass.LARGE) {
            stats.targetPass();
            largeNanos += nanos;
            if (largeKv.length() == state.contextLength()) {
                logits = result.lastLogits(0);
            }
        }
    }

    @Override
    public List<TokenEvent> endStep() {
        if (logits == null) {
            return List.of();
        }
        long t0 = System.nanoTime();
        SamplingParams sp = request.sampling();
        int length = state.contextLength();
        int[] context = state.context(0);
        TokenEvent event;
        if (pass == Pass.SMALL) {
            if (plannedRows == 0) {
                state.addDecodeStep(t0 - positionStart); // the last token's position, through its small pass
            }
            positionStart = t0;
            smallToken = Sampler.sample(logits, sp, context, length, request.streamId(), length);
            if (CollaborativeDecoding.confidence(rule, logits, sp, context, length) < threshold) {
                if (length >= largeContext) {
                    state.end(FinishReason.CONTEXT_FULL);
                    largeKv.close();
                    return List.of();
                }
                routed = true;
                largeNanos = 0;
                return List.of();
            }
            event = state.acceptToken(smallToken, logits);
        } else {
            int token = Sampler.sample(logits, sp, context, length, request.streamId(), length);
            stats.verification(1, token == smallToken ? 1 : 0);
            stats.addVerifyNanos(largeNanos + System.nanoTime() - t0);
            routed = false;
            event = state.acceptToken(token, logits);
        }
        if (state.finished()) {
            state.addDecodeStep(System.nanoTime() - positionStart);
            largeKv.close();
        } else {
            feedToken = true;
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
        largeKv.close();
    }

    @Override
    public void abandon() {
        if (state != null && !state.finished()) {
            state.abandon();
        }
        if (largeKv != null) {
            largeKv.close();
        }
    }
}
