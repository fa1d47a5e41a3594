package dev.tandem.runtime;

import java.util.Arrays;

/**
 * What decisions about a row of logits need, computed where the logits are ({@link Backend#summarize}): the
 * row's largest finite values with their ids, and two sums over its softmax. From them come the greedy token,
 * the top probability (a confidence), the top-2 margin, the entropy, the log-sum-exp and the log-probabilities
 * of the top tokens, without the row leaving the backend's memory.
 *
 * <p>With m = the largest value and the sums over the finite values l of the row (in double):
 * {@code z} = Σ exp(l − m) and {@code weighted} = Σ exp(l − m)·(l − m). Then the top probability is 1 / z,
 * log Σ exp(l) = m + ln z and the entropy (nats) is ln z − weighted / z. {@code ids} hold the largest finite
 * values in descending order, the lowest id first among equal values (−0 equals +0), at most as many as the
 * row has finite values. A row holding a NaN or +Infinity has no summary: {@link #valid} is false, no ids,
 * and NaN sums. The host reference ({@link #of}) sums in id order; another backend may sum in another
 * fixed order (the same for a row whatever else it is summarised with), so the sums agree to rounding.
 *
 * @param ids      the top ids, highest value first (length at most the k asked for)
 * @param values   their raw values
 * @param z        Σ exp(l − max) over the finite l (0 for a row of −Infinity, NaN for an invalid row)
 * @param weighted Σ exp(l − max)·(l − max) over the finite l
 */
public record LogitSummary(int[] ids, float[] values, double z, double weighted) {

    /** The largest k a summary may ask for: the selection costs a pass over the row per id. */
    public static final int MAX_K = 64;

    public LogitSummary {
        if (ids.length != values.length) {
            throw new IllegalArgumentException("a summary needs as many values as ids, got " + ids.length + " and " + values.length);
        }
        ids = ids.clone();
        values = values.clone();
    }

    /** Checks the k of a summary: at least 1, at most {@link #MAX_K}. */
    public static int requireK(int k) {
        if (k < 1 || k > MAX_K) {
            throw new IllegalArgumentException("a logit summary keeps 1 to " + MAX_K + " top ids, not " + k + ".");
        }
        return k;
    }

    /** This summary keeping only its first {@code k} top ids (the same sums): the summary at a smaller k. */
    public LogitSummary topOnly(int k) {
        requireK(k);
        return k >= ids.length ? this : new LogitSummary(Arrays.copyOf(ids, k), Arrays.copyOf(values, k), z, weighted);
    }

    /** False for a row holding a NaN or +Infinity (which no softmax can handle). */
    public boolean valid() {
        return !Double.isNaN(z);
    }

    /** The greedy token (lowest id among the largest), or -1 when the row has none ({@link Backend#argmax}'s rule). */
    public int argmax() {
        return ids.length == 0 ? -1 : ids[0];
    }

    /** The largest value (−Infinity when there is none). */
    public float max() {
        return values.length == 0 ? Float.NEGATIVE_INFINITY : values[0];
    }

    /** The softmax probability of the greedy token: 1 / z (NaN without one). */
    public double maxProbability() {
        return ids.length == 0 ? Double.NaN : 1 / z;
    }

    /** The softmax probability of the j-th top id. */
    public double probability(int j) {
        return Math.exp(values[j] - (double) max()) / z;
    }

    /** The log-softmax of the j-th top id: value − max − ln z. */
    public double logProbability(int j) {
        return values[j] - (double) max() - Math.log(z);
    }

    /** The top probability minus the second's (the top probability when the row has one finite value). */
    public double margin() {
        return ids.length < 2 ? maxProbability() : maxProbability() - probability(1);
    }

    /** log Σ exp(l) over the row. */
    public double logSumExp() {
        return max() + Math.log(z);
    }

    /** The softmax entropy in nats: ln z − weighted / z. */
    public double entropy() {
        return Math.log(z) - weighted / z;
    }

    /**
     * The host reference: the summary of {@code row} keeping its {@code k} largest finite values, the sums in id
     * order.
     */
    public static LogitSummary of(float[] row, int k) {
        requireK(k);
        float max = Float.NEGATIVE_INFINITY;
        for (float l : row) {
            if (Float.isNaN(l) || l == Float.POSITIVE_INFINITY) {
                return new LogitSummary(new int[0], new float[0], Double.NaN, Double.NaN);
            }
            max = Math.max(max, l);
        }
        int[] ids = topIds(row, k);
        int n = ids.length;
        float[] values = new float[n];
        for (int j = 0; j < n; j++) {
            values[j] = row[ids[j]];
        }
        double z = 0;
        double weighted = 0;
        if (n > 0) {
            double m = values[0];
            for (float l : row) {
                if (l != Float.NEGATIVE_INFINITY) {
                    double d = l - m;
                    double e = Math.exp(d);
                    z += e;
                    weighted += e * d;
                }
            }
        }
        return new LogitSummary(ids, values, z, weighted);
    }

    /**
     * The ids of the {@code k} largest finite values of {@code row} (NaN and -Infinity left out), highest first, the
     * lowest id first among equal values (-0 equals +0): the selection every top-k of Tandem makes.
     */
    public static int[] topIds(float[] row, int k) {
        int[] best = new int[k];
        int n = 0;
        for (int t = 0; t < row.length; t++) {
            float l = row[t];
            if (l == Float.NEGATIVE_INFINITY || Float.isNaN(l) || n == k && !(l > row[best[k - 1]])) {
                continue;
            }
            int i = n < k ? n++ : k - 1;
            while (i > 0 && l > row[best[i - 1]]) {
                best[i] = best[i - 1];
                i--;
            }
            best[i] = t;
        }
        return Arrays.copyOf(best, n);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LogitSummary s && Arrays.equals(ids, s.ids) && Arrays.equals(values, s.values)
                && Double.compare(z, s.z) == 0 && Double.compare(weighted, s.weighted) == 0;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(ids) * 31 + Arrays.hashCode(values) + Double.hashCode(z);
    }

    @Override
    public String toString() {
        return "LogitSummary[ids=" + Arrays.toString(ids) + ", values=" + Arrays.toString(values) + ", z=" + z + ", weighted="
                + weighted + "]";
    }
}
