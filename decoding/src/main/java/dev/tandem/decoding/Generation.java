package dev.tandem.decoding;

import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;

import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.util.Iterator;
import java.util.NoSuchElementException;

/**
 * One running generation, pulled a token at a time. Text is released only when it is final: never
 * half a UTF-8 character, never the start of what may become a stop string. Close it (or drain it) to
 * free its KV blocks; {@link #result()} is available once it has ended.
 *
 * <p>A generation dropped without being closed or drained does not keep its KV blocks for ever: once it
 * is unreachable, a cleaner thread returns them to the cache and logs a warning (logger
 * {@code dev.tandem.decoding}) — but only when the garbage collector gets to it, so close it.
 *
 * <p>This is a thin driver of one request: it runs the prefill and then one single-row forward pass
 * per token, handing each pass's logits to the request's state. {@link Engine} drives many requests
 * the same way, with their rows batched into shared passes.
 */
public final class Generation implements Iterator<TokenEvent>, AutoCloseable {
    private static final System.Logger LOG = System.getLogger("dev.tandem.decoding");
    private static final Cleaner CLEANER = Cleaner.create(Thread.ofPlatform().name("tandem-kv-reclaim").factory());

    private final LanguageModel model;
    private final RequestState state;
    private final Cleaner.Cleanable reclaim;
    private float[] nextLogits;

    Generation(LanguageModel model, GenerationRequest request, int[] promptIds, int[] eos) {
        this.model = model;
        this.state = new RequestState(model, request, promptIds, eos);
        this.reclaim = CLEANER.register(this, new Reclaim(state.kv()));
        Reference.reachabilityFence(this);
    }

    @Override
    public boolean hasNext() {
        return !state.finished();
    }

    @Override
    public TokenEvent next() {
        try {
            if (state.finished()) {
                throw new NoSuchElementException("the generation has ended (" + state.result().finishReason().wireName() + ")");
            }
            TokenEvent event;
            try {
                event = step();
            } catch (RuntimeException e) {
                close();
                throw e;
            }
            if (state.finished()) {
                reclaim.clean(); // the KV sequence is closed: nothing left to reclaim
            }
            return event;
        } finally {
            // The cleaner must not see this generation unreachable while a pass writes into its KV
            // sequence, and this makes the pass's changes to the sequence visible to the cleaner thread.
            Reference.reachabilityFence(this);
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
        try {
            state.end(FinishReason.CANCELLED);
        } finally {
            reclaim.clean();
            Reference.reachabilityFence(this);
        }
    }

    /**
     * Returns the KV blocks of a generation that was neither closed nor drained. Holds the sequence, never
     * the generation (which could then never become unreachable). Runs at most once: on the owner's thread
     * from {@link #close()} or the end of the generation (the sequence is closed by then: nothing to do),
     * or on the cleaner's thread once the generation is unreachable, when no other thread can be using the
     * sequence; the cache's block accounting is synchronized. Never throws.
     */
    private record Reclaim(KvSequence kv) implements Runnable {
        @Override
        public void run() {
            try {
                if (kv.isClosed()) {
                    return;
                }
                int positions = kv.length(), blocks = kv.blockCount();
                kv.close();
                if (!kv.cache().isClosed()) {
                    LOG.log(System.Logger.Level.WARNING, "a Generation was not closed: its KV sequence of " + positions
                            + " position" + (positions == 1 ? "" : "s") + " in " + blocks + " block" + (blocks == 1 ? "" : "s")
                            + " was reclaimed when the Generation became unreachable; close generations (or drain them) "
                            + "to free their KV blocks at once.");
                }
            } catch (RuntimeException | Error e) {
                try {
                    LOG.log(System.Logger.Level.WARNING, "could not reclaim the KV sequence of a Generation that was not closed.", e);
                } catch (RuntimeException | Error ignored) {
                    // nothing more to be done on the cleaner's thread
                }
            }
        }
    }
}
