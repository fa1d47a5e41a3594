package dev.tandem.runtime.cpu;

import dev.tandem.runtime.Progress;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The machine's memory read bandwidth as this JVM sees it: a streaming read of an off-heap buffer far
 * larger than the caches, split into one contiguous range per thread, timed over several passes. It is
 * the roofline a decode step is judged against, since decoding one token reads every weight once.
 */
public final class MemoryBandwidth {
    /** The default buffer: 1 GiB, far past any L3 cache on the machines we run on. */
    public static final long DEFAULT_BYTES = 1L << 30;

    /**
     * One measurement.
     *
     * @param threads        threads that read at once
     * @param bytes          bytes read per pass
     * @param bytesPerSecond per pass, sorted ascending
     */
    public record Result(int threads, long bytes, double[] bytesPerSecond) {
        public double best() {
            return bytesPerSecond[bytesPerSecond.length - 1];
        }

        public double median() {
            int n = bytesPerSecond.length;
            return n % 2 == 1 ? bytesPerSecond[n / 2] : (bytesPerSecond[n / 2 - 1] + bytesPerSecond[n / 2]) / 2;
        }
    }

    /** Bytes read per kernel call: large enough to stream, small enough that the call count warms the JIT. */
    private static final long CHUNK = 1L << 20;
    private static final int WARMUP_CALLS = 2_000;

    private MemoryBandwidth() {}

    private static float readShare(Kernels kernels, MemorySegment buffer, long from, long length) {
        float s = 0;
        for (long p = from; p < from + length; p += CHUNK) {
            s += kernels.streamSum(buffer, p, Math.min(CHUNK, from + length - p));
        }
        return s;
    }

    /**
     * Reads a {@code bytes}-sized buffer {@code passes} times with {@code pool}'s threads after one
     * untimed pass that also faults the pages in.
     *
     * @throws IllegalArgumentException if bytes is not a positive multiple of 64 per thread, or passes < 1
     */
    public static Result measure(CpuThreadPool pool, long bytes, int passes, Progress progress) {
        int threads = pool.threads();
        if (bytes <= 0 || bytes % (64L * threads) != 0) {
            throw new IllegalArgumentException("buffer size must be a positive multiple of 64 × threads, got " + bytes);
        }
        if (passes < 1) {
            throw new IllegalArgumentException("passes must be at least 1, got " + passes);
        }
        Kernels kernels = Kernels.select();
        long share = bytes / threads;
        double[] rates = new double[passes];
        float[] sink = new float[threads];
        try (Arena arena = Arena.ofShared()) {
            MemorySegment buffer = arena.allocate(bytes, 64);
            // Each thread writes its own share first, so pages land near the thread that reads them.
            pool.parallelFor(threads, t -> {
                MemorySegment part = buffer.asSlice(t * share, share);
                for (long p = 0; p < share; p += 4096) {
                    part.set(ValueLayout.JAVA_FLOAT, p, 1f);
                }
            });
            // Compile the read loop as an ordinary method first, on a cache-sized slice, so no timed pass
            // runs in the interpreter or waits for an on-stack replacement.
            for (int i = 0; i < WARMUP_CALLS; i++) {
                sink[0] += kernels.streamSum(buffer, 0, Math.min(CHUNK, bytes));
            }
            for (int pass = -1; pass < passes; pass++) {
                long start = System.nanoTime();
                pool.parallelFor(threads, t -> sink[t] += readShare(kernels, buffer, t * share, share));
                long elapsed = System.nanoTime() - start;
                if (pass >= 0) {
                    rates[pass] = bytes / (elapsed / 1e9);
                    progress.update(pass + 1, passes);
                }
            }
        }
        // The sums are kept so the reads cannot be optimised away; every page holds one 1.0f.
        float total = 0;
        for (float s : sink) {
            total += s;
        }
        if (total < 0) {
            throw new AssertionError("unreachable: a sum of non-negative floats was negative");
        }
        Arrays.sort(rates);
        return new Result(threads, bytes, rates);
    }
}
