package dev.tandem.decoding;

import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvReservation;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * Continuous batching of requests decoded by any methods: one thread-safe engine, shared by any number
 * of threads. {@link #submit} returns at once with an {@link EngineHandle}; a single scheduler thread
 * runs the requests together in steps of the {@link DecodingTask} protocol: each step, for every model
 * some running request uses, passes of that model over the rows of every request that asks (one decode
 * row of a plain request, a draft row, a verification chain, a tree, prompt chunks), then each request
 * takes its accepted tokens — none, one or several. Requests of different methods and of different
 * models run side by side; models on different backends compute at the same time. Requests join and
 * leave between steps. The engine's own {@link #model()} serves {@link #submit(GenerationRequest)}.
 *
 * <p><b>Exactness.</b> Each request keeps its own sampling parameters, seed and stream id, and a task's
 * decisions depend only on its own rows' logits, which a pass computes the same whatever else is in it;
 * so a request's tokens are exactly those it gets alone — whatever else runs, and however its prompt is
 * chunked.
 *
 * <p><b>Scheduling.</b> Running requests are served in admission order. Every step gives each request
 * the passes it asks for; prompts are prefilled in admission order in chunks, at most
 * {@link Options#maxPrefillTokensPerStep} prompt tokens per model per step in all, so that a long prompt
 * never stalls the running requests for more than one chunk.
 *
 * <p><b>Memory and admission.</b> A request is admitted only when it can reserve, in the KV cache of
 * every model it uses, the blocks it may hold at once ({@link DecodingTask#blocksNeeded}: its prompt plus
 * its max tokens, capped at the context, plus what a round appends before rolling back). The cache
 * enforces the reservation ({@link KvReservation}): nobody else can take those blocks, so a running
 * request never runs out of KV memory in the middle of its decode. Until then it waits in a FIFO queue
 * (no overtaking: a large request at the head is not starved by small ones behind it). The queue is
 * bounded ({@link Options#maxQueued}); submitting to a full queue throws a {@link TandemException} at
 * once. A request whose reservation exceeds a whole cache is rejected at submission. Blocks held by
 * sequences outside the engine (e.g. a {@link Generator} on the same model) are respected.
 *
 * <p><b>Failures.</b> If a forward pass throws, every request in that step fails with that exception
 * ({@link EngineHandle#result()} throws it) and frees its blocks; the engine goes on with the others.
 * A listener that throws fails only its own request.
 *
 * <p>A request's {@link GenerationStats} count the wall time of the forward passes it took part in
 * (shared with the other rows of those passes): prefill up to its first token, then one decode step
 * per later token (plain decoding) or per round (a method that guesses ahead: draft, verify, accept).
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
     * @param totalBlocks    blocks in the KV cache of the engine's model
     * @param usedBlocks     blocks in use (by the engine's requests and any other sequence)
     * @param freeBlocks     blocks free
     * @param reservedBlocks blocks of it reserved by running requests (held now or still to be taken)
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
    private final Generator plain;
    private boolean closed;
    private int reserved; // blocks of the engine model's cache reserved by running requests
    private long steps;

    public Engine(LanguageModel model) {
        this(model, Options.defaults());
    }

    public Engine(LanguageModel model, Options options) {
        this.model = model;
        this.options = options;
        this.cache = model.kvCache();
        this.plain = new Generator(model);
        this.scheduler = Thread.ofPlatform().name("tandem-engine").daemon(true).unstarted(this::loop);
        scheduler.start();
    }

    public LanguageModel model() {
        return model;
    }

    public Options options() {
        return options;
    }

    /** Submits a request decoded plainly by the engine's model; see {@link #submit(GenerationRequest, DecodingStrategy, Consumer)}. */
    public EngineHandle submit(GenerationRequest request) {
        return submit(request, plain, null);
    }

    /** Submits a request decoded plainly by the engine's model; see {@link #submit(GenerationRequest, DecodingStrategy, Consumer)}. */
    public EngineHandle submit(GenerationRequest request, Consumer<TokenEvent> listener) {
        return submit(request, plain, listener);
    }

    /**
     * Submits a request from any thread, to be decoded by {@code method} (with the models it was made
     * with), and returns at once. The prompt is encoded and checked here, so a bad prompt throws on the
     * caller's thread.
     *
     * @param listener called on the engine's thread with each token as soon as it is accepted (keep it
     *                 short: it delays every request); may be null
     * @throws TandemException if the prompt is bad, the request can never fit in a model's KV cache, the
     *                         queue is full, or the engine is closed
     */
    public EngineHandle submit(GenerationRequest request, DecodingStrategy method, Consumer<TokenEvent> listener) {
        DecodingTask task = method.task(request);
        Map<LanguageModel, Integer> need = new IdentityHashMap<>();
        for (LanguageModel m : task.models()) {
            int blocks = task.blocksNeeded(m);
            KvCache c = m.kvCache();
            if (blocks > c.numBlocks()) {
                task.abandon();
                throw new TandemException("the request needs " + blocks + " KV blocks of " + m.directory().getFileName()
                        + " (its prompt and max tokens, capped at the context, and a round's rows) but its KV cache has only "
                        + c.numBlocks() + " blocks of " + c.blockSize() + " tokens; lower max tokens or give the cache more memory.");
            }
            need.put(m, blocks);
        }
        int[] promptIds = Generator.promptIds(task.models().getFirst(), request);
        EngineHandle handle = new EngineHandle(this, request, promptIds, task, need, listener);
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

    /** Submits a request decoded by {@code method} and blocks until its result. */
    public GenerationResult generate(GenerationRequest request, DecodingStrategy method) {
        return submit(request, method, null).result();
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
                h.task().end(FinishReason.CANCELLED);
                retire(h);
                GenerationResult r = h.task().result();
                later(() -> h.complete(r));
            }
        }
    }

    private static GenerationResult neverStarted(EngineHandle h) {
        int[] prompt = h.promptIdsUnsafe();
        return new GenerationResult(prompt.clone(), new int[0], "", FinishReason.CANCELLED, new Usage(prompt.length, 0),
                new GenerationStats(0, 0, 0), List.of());
    }

    /**
     * Admits queued requests in FIFO order while their reservations fit: in every model's cache, all or
     * nothing.
     */
    private void admit() {
        while (!queue.isEmpty() && running.size() < options.maxRunning()) {
            EngineHandle h = queue.peekFirst();
            Map<LanguageModel, KvReservation> taken = new IdentityHashMap<>();
            for (Map.Entry<LanguageModel, Integer> e : h.blocksNeeded().entrySet()) {
                KvReservation r = e.getKey().kvCache().tryReserve(e.getValue());
                if (r == null) {
                    taken.values().forEach(KvReservation::close);
                    return;
                }
                taken.put(e.getKey(), r);
            }
            queue.pollFirst();
            h.reservations = taken;
            try {
                h.task().start(m -> taken.get(m).newSequence());
            } catch (RuntimeException | Error e) {
                h.task().abandon();
                taken.values().forEach(KvReservation::close);
                later(() -> h.fail(e));
                continue;
            }
            running.add(h);
            reserved += h.blocksNeeded().getOrDefault(model, 0);
        }
    }

    /** A request leaves: its reservations end (its sequences are closed by then). */
    private void retire(EngineHandle h) {
        if (running.remove(h)) {
            reserved -= h.blocksNeeded().getOrDefault(model, 0);
            h.reservations.values().forEach(KvReservation::close);
        }
    }

    private void fail(EngineHandle h, Throwable error) {
        h.task().abandon();
        retire(h);
        later(() -> h.fail(error));
    }

    /** One step of every running request ({@link StepExecutor}); then each takes its tokens, and the finished leave. */
    private void step() {
        List<EngineHandle> snapshot;
        lock.lock();
        try {
            snapshot = List.copyOf(running);
        } finally {
            lock.unlock();
        }
        if (snapshot.isEmpty()) {
            return;
        }
        List<DecodingTask> tasks = new ArrayList<>(snapshot.size());
        for (EngineHandle h : snapshot) {
            tasks.add(h.task());
        }
        Map<DecodingTask, StepExecutor.Outcome> outcomes = StepExecutor.step(tasks, options.maxPrefillTokensPerStep());
        List<EngineHandle> ended = new ArrayList<>();
        List<Object> results = new ArrayList<>();
        for (EngineHandle h : snapshot) {
            StepExecutor.Outcome o = outcomes.get(h.task());
            if (o.failed()) {
                ended.add(h);
                results.add(o.failure());
                continue;
            }
            try {
                for (TokenEvent event : o.events()) {
                    h.deliver(event);
                }
                if (h.task().finished()) {
                    ended.add(h);
                    results.add(h.task().result());
                }
            } catch (RuntimeException | Error e) {
                ended.add(h);
                results.add(e);
            }
        }
        lock.lock();
        try {
            steps++;
            for (int i = 0; i < ended.size(); i++) {
                EngineHandle h = ended.get(i);
                if (results.get(i) instanceof GenerationResult r) {
                    retire(h);
                    later(() -> h.complete(r));
                } else {
                    fail(h, (Throwable) results.get(i));
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
                h.task().end(FinishReason.CANCELLED);
                retire(h);
                GenerationResult r = h.task().result();
                later(() -> h.complete(r));
            } catch (RuntimeException | Error e) {
                fail(h, e);
            }
        }
    }
}
