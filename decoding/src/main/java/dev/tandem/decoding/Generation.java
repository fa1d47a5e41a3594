package dev.tandem.decoding;

import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;

import java.util.Iterator;
import java.util.NoSuchElementException;

/**
 * One running generation, pulled a token at a time. Text is released only when it is final: never
 * half a UTF-8 character, never the start of what may become a stop string. Close it (or drain it) to
 * free its KV blocks; {@link #result()} is available once it has ended.
 *
 * <p>This is a thin driver of one request: it runs the prefill and then one single-row forward pass
 * per token, handing each pass's logits to the request's state. {@link Engine} drives many requests
 * the same way, with their rows batched into shared passes.
 */
public final class Generation implements Iterator<TokenEvent>, AutoCloseable {
    private final LanguageModel model;
    private final RequestState state;
    private float[] nextLogits;

    Generation(LanguageModel model, GenerationRequest request, int[] promptIds, int[] eos) {
        this.model = model;
        this.state = new RequestState(model, request, promptIds, eos);
    }

    @Override
    public boolean hasNext() {
        return !state.finished();
    }

    @Override
    public TokenEvent next() {
        if (state.finished()) {
            throw new NoSuchElementException("the generation has ended (" + state.result().finishReason().wireName() + ")");
        }
        try {
            return step();
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    private TokenEvent step() {
        if (nextLogits == null) {
            long t0 = System.nanoTime();
            nextLogits = model.forward(Batch.of(Batch.Entry.continuation(state.kv(), state.promptIds()))).lastLogits(0);
            state.addPrefillNanos(System.nanoTime() - t0);
        }
        TokenEvent event = state.accept(nextLogits);
        if (!state.finished()) {
            long t0 = System.nanoTime();
            nextLogits = model.forward(Batch.of(Batch.Entry.continuation(state.kv(), event.token()))).lastLogits(0);
            state.addDecodeStep(System.nanoTime() - t0);
        }
        return event;
    }

    /** The finished generation's result. */
    public GenerationResult result() {
        return state.result();
    }

    /** Stops early (finish reason {@code cancelled} unless it had already ended) and frees the KV blocks. */
    @Override
    public void close() {
        state.end(FinishReason.CANCELLED);
    }
}
