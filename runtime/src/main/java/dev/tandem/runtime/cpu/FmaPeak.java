package dev.tandem.runtime.cpu;

import java.util.Arrays;

/**
 * The machine's multiply-add peak as this JVM sees it: independent chains of vector fused
 * multiply-adds from registers on every thread of a pool, timed over several passes. It is the
 * roofline a pass over many rows is judged against, as {@link MemoryBandwidth} is for one row.
 */
public final class FmaPeak {

    /**
     * One measurement.
     *
     * @param threads          threads that ran at once
     * @param macsPerSecond    multiply-adds per second of all threads together, per pass, sorted ascending
     */
    public record Result(int threads, double[] macsPerSecond) {
        public double best() {
            return macsPerSecond[macsPerSecond.length - 1];
        }
    }

    private static final int WARMUP_CALLS = 200;

    private FmaPeak() {}

    /**
     * Runs {@code passes} timed passes of about {@code millisPerPass} each on every thread of
     * {@code pool}, after warming the loop up.
     */
    public static Result measure(CpuThreadPool pool, int passes, int millisPerPass) {
        if (passes < 1 || millisPerPass < 1) {
            throw new IllegalArgumentException("passes and milliseconds must be at least 1, got " + passes + " and " + millisPerPass);
        }
        Kernels kernels = Kernels.select();
        int threads = pool.threads();
        long macsPerStep = (long) Kernels.FMA_CHAINS * kernels.lanes();
        float[] sink = new float[threads];
        for (int i = 0; i < WARMUP_CALLS; i++) {
            sink[0] += kernels.fmaChains(i, 10_000);
        }
        // Size the pass from one timed call on the caller's thread.
        long probe = 1_000_000;
        long t0 = System.nanoTime();
        sink[0] += kernels.fmaChains(1, probe);
        double nanosPerStep = Math.max(1e-3, (System.nanoTime() - t0) / (double) probe);
        long steps = Math.max(1, (long) (millisPerPass * 1e6 / nanosPerStep));
        double[] rates = new double[passes];
        for (int pass = 0; pass < passes; pass++) {
            long start = System.nanoTime();
            pool.parallelFor(threads, t -> sink[t] += kernels.fmaChains(t, steps));
            long elapsed = System.nanoTime() - start;
            rates[pass] = threads * steps * (double) macsPerStep / (elapsed / 1e9);
        }
        float total = 0;
        for (float s : sink) {
            total += s;
        }
        if (Float.isNaN(total)) {
            throw new AssertionError("unreachable: the chains converge to a finite value");
        }
        Arrays.sort(rates);
        return new Result(threads, rates);
    }
}
