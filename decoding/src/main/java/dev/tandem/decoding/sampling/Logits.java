package dev.tandem.decoding.sampling;

import java.util.Arrays;

/** Shared checks and the deterministic ranking used by top-p and top-logprobs. */
final class Logits {

    private Logits() {}

    /** Rejects what no softmax can handle: an empty vector, NaN, +Infinity (−Infinity means "removed"). */
    static void requireValid(float[] logits) {
        if (logits.length == 0) {
            throw new IllegalArgumentException("logits must have at least one entry, but was empty.");
        }
        for (int i = 0; i < logits.length; i++) {
            float l = logits[i];
            if (Float.isNaN(l) || l == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException(
                        "logits must be finite or -Infinity, but logit " + i + " was " + l + ".");
            }
        }
    }

    /**
     * Token ids ordered by value descending, ties by lower id first ({@code -0.0} equals {@code 0.0});
     * with {@code finiteOnly}, −Infinity entries are left out. Values must not be NaN.
     */
    static int[] descendingOrder(float[] values, boolean finiteOnly) {
        // One primitive sort of (flipped sortable value bits, id) pairs: no boxing, no comparator.
        long[] keys = new long[values.length];
        int m = 0;
        for (int id = 0; id < values.length; id++) {
            float v = values[id];
            if (!finiteOnly || v != Float.NEGATIVE_INFINITY) {
                keys[m++] = (long) ~sortableBits(v) << 32 | id;
            }
        }
        Arrays.sort(keys, 0, m);
        int[] order = new int[m];
        for (int j = 0; j < m; j++) {
            order[j] = (int) keys[j];
        }
        return order;
    }

    /** An int whose signed order is the float order (−0.0 mapped to 0.0). */
    private static int sortableBits(float v) {
        int bits = Float.floatToIntBits(v + 0.0f);
        return bits ^ ((bits >> 31) & 0x7FFFFFFF);
    }
}
