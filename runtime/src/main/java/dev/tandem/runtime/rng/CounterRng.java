package dev.tandem.runtime.rng;

import java.util.Objects;

/**
 * Stateless counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011), the generator behind cuRAND's {@code curand_Philox4x32_10}, so
 * that a CUDA kernel can draw the identical numbers.
 *
 * <p>A draw is a pure function of its coordinates, never of call order, thread or batch slot:
 * <pre>
 *   key     = (k0, k1)     = (seed bits 0..31, seed bits 32..63)
 *   counter = (c0, c1, c2, c3)
 *           = (position,                     // 0 ≤ position &lt; 2^32
 *              stream bits 0..31,
 *              stream bits 32..63,
 *              purpose.ordinal() &lt;&lt; 24 | index)  // 0 ≤ index &lt; 2^24
 *   (x0, x1, x2, x3) = Philox4x32-10(counter, key)
 *   bits64  = x1 &lt;&lt; 32 | x0                  // x2, x3 are unused for now
 *   uniform = (bits64 &gt;&gt;&gt; 11) · 2^-53        // in [0, 1)
 * </pre>
 * {@code index} numbers the draws one (stream, position, purpose) needs, e.g. several Gumbel noises.
 */
public final class CounterRng {

    // Philox4x32 round multipliers and Weyl key increments (golden ratio, sqrt(3) - 1).
    private static final long M0 = 0xD2511F53L;
    private static final long M1 = 0xCD9E8D57L;
    private static final int W0 = 0x9E3779B9;
    private static final int W1 = 0xBB67AE85;
    private static final int ROUNDS = 10;

    static final long MAX_POSITION = 1L << 32;
    static final int MAX_INDEX = 1 << 24;

    private CounterRng() {}

    /** 64 random bits for one draw; see the class comment for how the arguments form the counter. */
    public static long bits64(long seed, long stream, long position, RngPurpose purpose, int index) {
        Objects.requireNonNull(purpose, "purpose");
        if (position < 0 || position >= MAX_POSITION) {
            throw new IllegalArgumentException("position must be in [0, 2^32), but was " + position + ".");
        }
        if (index < 0 || index >= MAX_INDEX) {
            throw new IllegalArgumentException("index must be in [0, 2^24), but was " + index + ".");
        }
        int[] x = philox4x32x10(
                (int) position,
                (int) stream,
                (int) (stream >>> 32),
                purpose.ordinal() << 24 | index,
                (int) seed,
                (int) (seed >>> 32));
        return (long) x[1] << 32 | (x[0] & 0xFFFFFFFFL);
    }

    /** A double uniform in [0, 1) with 53 random bits (every multiple of 2^-53 equally likely). */
    public static double uniform(long seed, long stream, long position, RngPurpose purpose, int index) {
        return (bits64(seed, stream, position, purpose, index) >>> 11) * 0x1.0p-53;
    }

    /** Raw Philox4x32-10 on counter (c0..c3) and key (k0, k1); returns the four output words. */
    static int[] philox4x32x10(int c0, int c1, int c2, int c3, int k0, int k1) {
        for (int round = 0; round < ROUNDS; round++) {
            if (round > 0) {
                k0 += W0;
                k1 += W1;
            }
            long p0 = M0 * (c0 & 0xFFFFFFFFL);
            long p1 = M1 * (c2 & 0xFFFFFFFFL);
            int n0 = (int) (p1 >>> 32) ^ c1 ^ k0;
            int n2 = (int) (p0 >>> 32) ^ c3 ^ k1;
            c1 = (int) p1;
            c3 = (int) p0;
            c0 = n0;
            c2 = n2;
        }
        return new int[] {c0, c1, c2, c3};
    }
}
