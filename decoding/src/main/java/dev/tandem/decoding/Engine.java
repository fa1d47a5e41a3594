package dev.tandem.decoding;

import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * Continuous batching over one {@link LanguageModel}: one thread-safe engine per model, shared by any
 * number of threads. {@link #submit} returns at once with an {@link EngineHandle}; a single scheduler
 * thread runs the requests together, one {@code model.forward(Batch)} per step, each step holding one
 * decode row for every running request that has finished its prompt plus prompt chunks of requests
 * still prefilling. Requests join and leave between steps.
 *
 * <p><b>Exactness.</b> Each request keeps its own sampling parameters, seed and stream id and is
 * sampled by the same code as {@link Generator} (the same {@code CounterRng} keys), and the forward
 * pass gives each row the same logits whatever else is in the batch, so a request's tokens are
 * exactly those it gets alone — whatever else runs, and however its prompt is chunked.
 *
 * <p><b>Scheduling.</b> Running requests are served in admission order. Every step decodes one token
 * for each request that is past its prompt; then prompts are prefilled in admission order in chunks,
 * at most {@link Options#maxPrefillTokensPerStep} prompt tokens per step in all, so that a long
 * prompt never stalls the running decodes for more than one chunk. Only a prompt's last chunk asks
 * for logits (its last row).
 *
 * <p><b>Memory and admission.</b> A request is admitted only when the KV blocks for its prompt plus
 * its max tokens, capped at the model's context, are free; those blocks are reserved for it until it
 * ends, so a running request can never run out of KV memory in the middle of its decode. Until then it
 * waits in a FIFO queue (no overtaking: a large request at the head is not starved by small ones
 * behind it). The queue is bounded ({@link Options#maxQueued}); submitting to a full queue throws a
 * {@link TandemException} at once. A request whose reservation exceeds the whole cache is rejected at
 * submission. Blocks held by sequences outside the engine (e.g. a {@link Generator} on the same
 * model) are respected: admission looks at the cache's free blocks less what running requests may
 * still take.
 *
 * <p><b>Failures.</b> If a forward pass throws, every request in that step fails with that exception
 * ({@link EngineHandle#result()} throws it) and frees its blocks; the engine goes on with the others.
 * A listener that throws fails only its own request.
 *
 * <p>A request's {@link GenerationStats} count the wall time of the forward passes it took part in
 * (shared with the other rows of those passes): prefill up to its first token, then one decode step
 * per later token.
 *
 * <p>{@link #close()} stops accepting requests, lets the step in progress finish, cancels everything
 * still queued or running (finish reason {@code cancelled}, blocks freed) and stops the scheduler thread.
 */
public final class Engine implements AutoCloseable {

    /**
     * Engine settings.
     *
     * @param maxPrefillTokensPerStep the most prompt tokens prefilled in one step (over all requests)
     * @param maxQueued               the most requests waiting for admission (every request waits there,
     *                                if only until the next step); more are rejected
     * @param maxRunning              the most requests running at once (decode rows per step)
     */
    public record Options(int maxPrefillTokensPerStep, int maxQueued, int maxRunning) {
        public Options {
            if (maxPrefillTokensPerStep < 1 || maxQueued < 1 || maxRunning < 1) {
                throw new IllegalArgumentException("maxPrefillTokensPerStep, maxQueued and maxRunning must be at least 1, but were "
                        + maxPrefillTokensPerStep + ", " + maxQueued + " and " + maxRunning + ".");
            }
        }

        /** 256 prompt tokens per step, 1024 queued requests, 256 running. */
        public static Options defaults() {
            return new Options(256, 1024, 256);
        }

        public Options withMaxPrefillTokensPerStep(int n) {
            return new Options(n, maxQueued, maxRunning);
        }

        public Options withMaxQueued(int n) {
            return new Options(maxPrefillTokensPerStep, n, maxRunning);
        }

        public Options withMaxRunning(int n) {
            return new Options(maxPrefillTokensPerStep, maxQueued, n);
        }
    }

    /**
     * A snapshot of the engine and its model's KV cache.
     *
     * @param totalBlocks    blocks in the model's KV cache
     * @param usedBlocks     blocks in use (by the engine's requests and any other sequence)
     * @param freeBlocks     blocks free
     * @param reservedBlocks blocks reserved by running requests (held now or still to be taken)
     * @param blockSize      tokens per block
     * @param running        requests admitted and not ended
     * @param queued         requests waiting for admission
     * @param steps          forward passes run so far
     */
    public record Stats(int totalBlocks, int usedBlocks, int freeBlocks, int reservedBlocks, int blockSize,
                        int running, int queued, long steps) {
    }

    private final LanguageModel model;
    private final Options options;
    private final KvCache cache;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition wake = lock.newCondition();
    private final ArrayDeque<EngineHandle> queue = new ArrayDeque<>();
    private final List<EngineHandle> running = new ArrayList<>();
    private final Thread scheduler;
    private final List<Runnable> pending = new ArrayList<>(); // scheduler thread only
    private boolean closed;
    private int reserved;
    private long steps;

    public Engine(LanguageModel model) {
        this(model, Options.defaults());
    }

    public Engine(LanguageModel model, Options options) {
        this.model = model;
        this.options = options;
        this.cache = model.kvCache();
        this.scheduler = Thread.ofPlatform().name("tandem-engine").daemon(true).unstarted(this::loop);
        scheduler.start();
    }

    public LanguageModel model() {
        return model;
    }

    public Options options() {
        return options;
    }

    /** Submits a request; see {@link #submit(GenerationRequest, Consumer)}. */
    public EngineHandle submit(GenerationRequest request) {
        return submit(request, null);
    }

    /**
     * Submits a request from any thread and returns at once. The prompt is encoded and checked here
     * (as {@link Generator#stream} does), so a bad prompt throws on the caller's thread.
     *
     * @param listener called on the engine's thread with each token as soon as it is chosen (keep it
     *                 short: it delays every request); may be null
     * @throws TandemException if the prompt is bad, the request can never fit in the KV cache, the
     *                         queue is full, or the engine is closed
     */
    public EngineHandle submit(GenerationRequest request, Consumer<TokenEvent> listener) {
        int[] promptIds = Generator.promptIds(model, request);
        int[] eos = Generator.eosTokens(model, request);
        int maxContext = model.config().maxContext();
        long tokens = Math.min((long) promptIds.length + request.maxTokens(), Math.max(maxContext, promptIds.length));
        int blockSize = cache.blockSize();
        int need = (int) ((tokens + blockSize - 1) / blockSize);
        if (need > cache.numBlocks()) {
            throw new TandemException("the request needs " + need + " KV blocks (" + tokens + " tokens: its prompt and max "
                    + "tokens, capped at the context) but the KV cache has only " + cache.numBlocks() + " blocks of "
                    + blockSize + " tokens; lower max tokens or give the cache more memory.");
        }
        EngineHandle handle = new EngineHandle(this, request, promptIds, eos, need, listener);
        lock.lock();
        try {
            if (closed) {
                throw new TandemException("the engine is closed, so it accepts no new requests.");
            }
            if (queue.size() >= options.maxQueued()) {
                throw new TandemException("the request queue is full (" + queue.size() + " waiting); submit again when "
                        + "requests have finished, or allow a longer queue (Engine.Options maxQueued).");
            }
            queue.addLast(handle);
            wake.signalAll();
        } finally {
            lock.unlock();
        }
        return handle;
    }

    /** Submits a request and blocks until its result. */
    public GenerationResult generate(GenerationRequest request) {
        return submit(request).result();
    }

    /** Memory and queue accounting, readable from any thread. */
    public Stats stats() {
        lock.lock();
        try {
            return new Stats(cache.numBlocks(), cache.usedBlocks(), cache.freeBlocks(), reserved, cache.blockSize(),
                    running.size(), queue.size(), steps);
        } finally {
            lock.unlock();
        }
    }

    /** Cancels everything queued or running, stops the scheduler thread and waits for it. */
    @Override
    public void close() {
        lock.lock();
        try {
            closed = true;
            wake.signalAll();
        } finally {
            lock.unlock();
        }
        if (!isSchedulerThread()) {
            boolean interrupted = false;
            while (scheduler.isAlive()) {
                try {
                    scheduler.join();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    boolean isSchedulerThread() {
        return Thread.currentThread() == scheduler;
    }

    void wakeUp() {
        lock.lock();
        try {
            wake.signalAll();
        } finally {
            lock.unlock();
        }
    }

    // ---------------------------------------------------------------- scheduler thread

    private void loop() {
        boolean exit = false;
        while (!exit) {
            lock.lock();
            try {
                while (true) {
                    if (closed) {
                        shutDown();
                        exit = true;
                        break;
                    }
                    reapCancelled();
                    admit();
                    if (!running.isEmpty()) {
                        break;
                    }
                    if (!pending.isEmpty()) {
                        runPendingUnlocked();
                        continue; // the state may have changed meanwhile
                    }
                    if (queue.isEmpty()) {
                        wake.awaitUninterruptibly();
                    } else {
                        // Waiting for blocks held outside the engine: look again now and then.
                        wake.await(10, TimeUnit.MILLISECONDS);
                    }
                }
            } catch (InterruptedException e) {
                // Not expected (the thread is private); the loop re-checks its state.
            } finally {
                lock.unlock();
            }
            runPending();
            if (exit) {
                return;
            }
            try {
                step();
            } catch (Throwable t) {
                // A bug in the engine itself: fail what is running rather than lose the thread.
                lock.lock();
                try {
                    for (EngineHandle h : List.copyOf(running)) {
                        fail(h, t);
                    }
                } finally {
                    lock.unlock();
                }
            }
            runPending();
        }
    }

    /** Handles are completed outside the lock, so that code waiting on them never runs while the engine is locked. */
    private void later(Runnable completion) {
        pending.add(completion);
    }

    private void runPending() {
        while (!pending.isEmpty()) {
            List<Runnable> now = List.copyOf(pending);
            pending.clear();
            for (Runnable r : now) {
                try {
                    r.run();
                } catch (RuntimeException | Error e) {
                    // A dependent of the handle's future failed; that is the caller's affair.
                }
            }
        }
    }

    /** Runs pending completions from inside the locked section, releasing the lock around them. */
    private void runPendingUnlocked() {
        lock.unlock();
        try {
            runPending();
        } finally {
            lock.lock();
        }
    }

    /** Cancelled requests leave at the step boundary: queued ones never start, running ones free their blocks. */
    private void reapCancelled() {
        queue.removeIf(h -> {
            if (h.cancelRequested()) {
                later(() -> h.complete(neverStarted(h)));
                return true;
            }
            return false;
        });
        for (EngineHandle h : List.copyOf(running)) {
            if (h.cancelRequested()) {
                h.state.end(FinishReason.CANCELLED);
                retire(h);
                GenerationResult r = h.state.result();
                later(() -> h.complete(r));
            }
        }
    }

    private static GenerationResult neverStarted(EngineHandle h) {
        int[] prompt = h.promptIdsUnsafe();
        return new GenerationResult(prompt.clone(), new int[0], "", FinishReason.CANCELLED, new Usage(prompt.length, 0),
                new GenerationStats(0, 0, 0), List.of());
    }

    /** Admits queued requests in FIFO order while their reservations fit. */
    private void admit() {
        while (!queue.isEmpty() && running.size() < options.maxRunning()) {
            EngineHandle h = queue.peekFirst();
            if (h.reservedBlocks() > cache.freeBlocks() - stillToTake()) {
                return;
            }
            queue.pollFirst();
            try {
                h.state = new RequestState(model, h.request(), h.promptIdsUnsafe(), h.eos());
            } catch (RuntimeException | Error e) {
                later(() -> h.fail(e));
                continue;
            }
            h.prefilled = 0;
            running.add(h);
            reserved += h.reservedBlocks();
        }
    }

    /** Blocks that running requests have reserved but not yet taken from the cache. */
    private int stillToTake() {
        int blockSize = cache.blockSize();
        int n = 0;
        for (EngineHandle h : running) {
            int held = (h.state.kv().length() + blockSize - 1) / blockSize;
            n += Math.max(0, h.reservedBlocks() - held);
        }
        return n;
    }

    private void retire(EngineHandle h) {
        if (running.remove(h)) {
            reserved -= h.reservedBlocks();
        }
    }

    private void fail(EngineHandle h, Throwable error) {
        if (!h.state.finished()) {
            h.state.abandon();
        }
        retire(h);
        later(() -> h.fail(error));
    }

    /** One forward pass: a decode row for each request past its prompt, then prompt chunks within the budget. */
    private void step() {
        List<EngineHandle> members = new ArrayList<>();
        List<Batch.Entry> entries = new ArrayList<>();
        List<Boolean> prefill = new ArrayList<>();
        List<Integer> chunk = new ArrayList<>();
        List<EngineHandle> snapshot;
        lock.lock();
        try {
            snapshot = List.copyOf(running);
        } finally {
            lock.unlock();
        }
        for (EngineHandle h : snapshot) {
            if (h.prefilled == h.promptIdsUnsafe().length) {
                members.add(h);
                entries.add(Batch.Entry.continuation(h.state.kv(), h.state.lastToken()));
                prefill.add(false);
                chunk.add(1);
            }
        }
        int budget = options.maxPrefillTokensPerStep();
        for (EngineHandle h : snapshot) {
            int[] prompt = h.promptIdsUnsafe();
            if (budget == 0) {
                break;
            }
            if (h.prefilled < prompt.length) {
                int n = Math.min(budget, prompt.length - h.prefilled);
                budget -= n;
                members.add(h);
                Batch.Entry entry = Batch.Entry.continuation(h.state.kv(), Arrays.copyOfRange(prompt, h.prefilled, h.prefilled + n));
                // Only the prompt's last chunk needs logits (of its last row); earlier chunks skip the LM head.
                entries.add(h.prefilled + n < prompt.length ? entry.withLogitRows() : entry);
                prefill.add(true);
                chunk.add(n);
            }
        }
        if (entries.isEmpty()) {
            return;
        }
        long t0 = System.nanoTime();
        ForwardResult result;
        try {
            result = model.forward(Batch.of(entries));
        } catch (RuntimeException | Error e) {
            lock.lock();
            try {
                steps++;
                for (EngineHandle h : members) {
                    fail(h, e);
                }
            } finally {
                lock.unlock();
            }
            return;
        }
        long nanos = System.nanoTime() - t0;
        List<EngineHandle> ended = new ArrayList<>();
        List<Object> outcomes = new ArrayList<>();
        for (int i = 0; i < members.size(); i++) {
            EngineHandle h = members.get(i);
            try {
                if (prefill.get(i)) {
                    h.prefilled += chunk.get(i);
                    h.state.addPrefillNanos(nanos);
                    if (h.prefilled < h.promptIdsUnsafe().length) {
                        continue;
                    }
                } else {
                    h.state.addDecodeStep(nanos);
                }
                TokenEvent event = h.state.accept(result.lastLogits(i));
                h.deliver(event);
                if (h.state.finished()) {
                    ended.add(h);
                    outcomes.add(h.state.result());
                }
            } catch (RuntimeException | Error e) {
                ended.add(h);
                outcomes.add(e);
            }
        }
        lock.lock();
        try {
            steps++;
            for (int i = 0; i < ended.size(); i++) {
                EngineHandle h = ended.get(i);
                if (outcomes.get(i) instanceof GenerationResult r) {
                    retire(h);
                    later(() -> h.complete(r));
                } else {
                    fail(h, (Throwable) outcomes.get(i));
                }
            }
        } finally {
            lock.unlock();
        }
    }

    /** On close: everything queued or running ends as cancelled and frees its blocks. */
    private void shutDown() {
        for (EngineHandle h : queue) {
            later(() -> h.complete(neverStarted(h)));
        }
        queue.clear();
        for (EngineHandle h : List.copyOf(running)) {
            try {
                h.state.end(FinishReason.CANCELLED);
                retire(h);
                GenerationResult r = h.state.result();
                later(() -> h.complete(r));
            } catch (RuntimeException | Error e) {
                fail(h, e);
            }
        }
    }
}
