package dev.tandem.runtime.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * A persistent pool for data-parallel kernels: {@link #parallelFor} hands task indices
 * {@code [0, tasks)} to the caller and {@code threads − 1} workers, and returns when all are done.
 * Which thread runs which task never matters for results: kernels give each task whole outputs,
 * never part of a reduction. Workers spin briefly between calls (decode issues many small calls
 * back to back), then park.
 */
public final class CpuThreadPool implements AutoCloseable {
    private static final int SPIN_BEFORE_PARK = 20_000;

    private final int threads;
    private final Thread[] workers;
    private final ThreadLocal<Boolean> insideTask = ThreadLocal.withInitial(() -> Boolean.FALSE);
    private volatile Job current;
    private volatile boolean closed;

    private static final class Job {
        final IntConsumer body;
        final int tasks;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger finished = new AtomicInteger();
        final AtomicReference<Throwable> failure = new AtomicReference<>();

        Job(IntConsumer body, int tasks) {
            this.body = body;
            this.tasks = tasks;
        }

        void work() {
            int i;
            while ((i = next.getAndIncrement()) < tasks) {
                try {
                    if (failure.get() == null) {
                        body.accept(i);
                    }
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                } finally {
                    finished.incrementAndGet();
                }
            }
        }
    }

    public CpuThreadPool(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("thread count must be at least 1, got " + threads);
        }
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        for (int w = 0; w < workers.length; w++) {
            Thread t = new Thread(this::workerLoop, "tandem-cpu-" + (w + 1));
            t.setDaemon(true);
            workers[w] = t;
            t.start();
        }
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code body.accept(i)} for every i in [0, tasks); rethrows the first failure. */
    public void parallelFor(int tasks, IntConsumer body) {
        if (tasks <= 0) {
            return;
        }
        if (tasks == 1 || workers.length == 0 || insideTask.get()) {
            for (int i = 0; i < tasks; i++) {
                body.accept(i);
            }
            return;
        }
        synchronized (this) {
            if (closed) {
                throw new IllegalStateException("CPU thread pool is closed");
            }
            Job job = new Job(body, tasks);
            current = job;
            for (Thread w : workers) {
                LockSupport.unpark(w);
            }
            insideTask.set(Boolean.TRUE);
            try {
                job.work();
            } finally {
                insideTask.set(Boolean.FALSE);
            }
            while (job.finished.get() < tasks) {
                Thread.onSpinWait();
            }
            current = null;
            Throwable t = job.failure.get();
            if (t instanceof RuntimeException re) {
                throw re;
            } else if (t instanceof Error e) {
                throw e;
            } else if (t != null) {
                throw new RuntimeException(t);
            }
        }
    }

    private void workerLoop() {
        insideTask.set(Boolean.TRUE);
        Job last = null;
        int idle = 0;
        while (!closed) {
            Job job = current;
            if (job != null && job != last) {
                last = job;
                job.work();
                idle = 0;
            } else if (idle < SPIN_BEFORE_PARK) {
                idle++;
                Thread.onSpinWait();
            } else {
                LockSupport.park(this);
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
    }
}
