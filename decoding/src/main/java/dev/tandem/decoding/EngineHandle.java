package dev.tandem.decoding;

import dev.tandem.runtime.kv.KvReservation;
import dev.tandem.transformer.LanguageModel;

import java.util.Iterator;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.function.Consumer;

/**
 * One request submitted to an {@link Engine}. Iterate it to stream its {@link TokenEvent}s as the
 * engine produces them ({@code hasNext()} blocks until the next token or the end), or block on
 * {@link #result()}; or both. Any thread may use it. {@link #cancel()} and {@link #close()} stop the
 * request at the engine's next step boundary: its KV blocks are freed and it ends with finish reason
 * {@code cancelled} (unless it had already ended).
 */
public final class EngineHandle implements Iterator<TokenEvent>, AutoCloseable {
    private static final Object END = new Object();

    private final Engine engine;
    private final GenerationRequest request;
    private final int[] promptIds;
    private final DecodingTask task;
    private final Map<LanguageModel, Integer> blocksNeeded;
    private final Consumer<TokenEvent> listener;
    private final LinkedBlockingQueue<Object> stream = new LinkedBlockingQueue<>();
    private final CompletableFuture<GenerationResult> done = new CompletableFuture<>();
    private volatile boolean cancelRequested;
    private Object peeked;

    // Owned by the engine's scheduler thread.
    Map<LanguageModel, KvReservation> reservations = Map.of();

    EngineHandle(Engine engine, GenerationRequest request, int[] promptIds, DecodingTask task,
                 Map<LanguageModel, Integer> blocksNeeded, Consumer<TokenEvent> listener) {
        this.engine = engine;
        this.request = request;
        this.promptIds = promptIds;
        this.task = task;
        this.blocksNeeded = Map.copyOf(blocksNeeded);
        this.listener = listener;
    }

    public GenerationRequest request() {
        return request;
    }

    /** The prompt's token ids as the engine runs them. */
    public int[] promptIds() {
        return promptIds.clone();
    }

    int[] promptIdsUnsafe() {
        return promptIds;
    }

    /** The method decoding this request, as the engine steps it. */
    DecodingTask task() {
        return task;
    }

    /** The name of the method decoding this request ({@code plain}, {@code speculative}, ...). */
    public String method() {
        return task.method();
    }

    Map<LanguageModel, Integer> blocksNeeded() {
        return blocksNeeded;
    }

    /**
     * KV blocks held back for this request while it runs, over every model it uses: its prompt plus max
     * tokens, capped at the context, plus the rows a round appends before rolling back.
     */
    public int reservedBlocks() {
        return blocksNeeded.values().stream().mapToInt(Integer::intValue).sum();
    }

    boolean cancelRequested() {
        return cancelRequested;
    }

    /** Whether the request has ended (finished, cancelled or failed). */
    public boolean isDone() {
        return done.isDone();
    }

    /**
     * Blocks until the next token event or the end of the request; false at the end (then
     * {@link #result()} returns at once, or throws if the request failed).
     */
    @Override
    public synchronized boolean hasNext() {
        if (peeked == null) {
            try {
                peeked = stream.take();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for the next token", e);
            }
        }
        if (peeked == END) {
            stream.offer(END); // stays at the end for any later call
            peeked = null;
            return false;
        }
        return true;
    }

    @Override
    public synchronized TokenEvent next() {
        if (!hasNext()) {
            throw new NoSuchElementException("the request has ended");
        }
        TokenEvent e = (TokenEvent) peeked;
        peeked = null;
        return e;
    }

    /**
     * Blocks until the request ends and returns its result (finish reason {@code cancelled} when it was
     * cancelled or the engine closed). If a forward pass or the listener failed, throws that exception.
     */
    public GenerationResult result() {
        try {
            return done.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the result", e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException r) {
                throw r;
            }
            if (cause instanceof Error err) {
                throw err;
            }
            throw new CompletionException(cause);
        }
    }

    /** The result as a future (a copy: completing or cancelling it does not affect the request). */
    public CompletableFuture<GenerationResult> future() {
        return done.copy();
    }

    /** Asks the engine to stop this request at its next step boundary; returns at once. */
    public void cancel() {
        if (!done.isDone()) {
            cancelRequested = true;
            engine.wakeUp();
        }
    }

    /**
     * Cancels the request (if it has not ended) and waits until the engine has ended it and freed its
     * KV blocks — except when called from the engine's own thread (a listener), where it only cancels.
     */
    @Override
    public void close() {
        cancel();
        if (!engine.isSchedulerThread()) {
            try {
                done.handle((r, t) -> null).get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (ExecutionException e) {
                throw new IllegalStateException(e); // handle() never completes exceptionally
            }
        }
    }

    // ---- called by the engine's scheduler thread ----

    void deliver(TokenEvent event) {
        stream.add(event);
        if (listener != null) {
            listener.accept(event);
        }
    }

    void complete(GenerationResult result) {
        stream.add(END);
        done.complete(result);
    }

    void fail(Throwable error) {
        stream.add(END);
        done.completeExceptionally(error);
    }
}
