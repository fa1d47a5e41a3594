package dev.tandem.runtime;

import java.util.Arrays;

/**
 * A weighted sum of rows of logits with an optional plausibility mask taken from one row: the one operation every
 * method that decodes with two or more views mixes their logits with (contrastive decoding, proxy tuning,
 * context-aware decoding, classifier-free guidance), run where the logits are by {@link Backend#mixLogits}.
 *
 * <p>For rows {@code x[0..n)} of logits over the vocabulary:
 * <pre>
 *   out[t] = (float) (w[0]·x[0][t] + w[1]·x[1][t] + … + w[n−1]·x[n−1][t])     in double, added in row order from 0.0
 *   out[t] = −∞  where t is outside the plausible set of row m (when maskRow = m and alpha &gt; 0):
 *            keep t iff x[m][t] − max(x[m]) ≥ ln(alpha), i.e. softmax(x[m])[t] ≥ alpha · max softmax(x[m])
 * </pre>
 * Each product of a float weight and a float logit is exact in double, so the sum does not depend on whether a
 * backend fuses the multiply into the add, and every backend gives the same bits (NaN payloads aside). A weight of 1
 * on one row and 0 on the others returns that row exactly where the other rows are finite, save that −0 becomes +0
 * (the identities the methods promise: contrastive β = 0, CAD α = 0, guidance scale 1; 0 · ±∞ is NaN). The max
 * ignores NaN; a NaN or −∞ of the mask row is outside the set; alpha = 0 masks nothing.
 *
 * @param weights one finite weight per row
 * @param maskRow the row whose softmax defines the plausible set, or −1 for no mask
 * @param alpha   the plausibility threshold in [0, 1] (0: no mask)
 */
public record LogitMix(float[] weights, int maskRow, double alpha) {

    public LogitMix {
        if (weights.length == 0) {
            throw new IllegalArgumentException("a logit mix needs at least one row");
        }
        for (int i = 0; i < weights.length; i++) {
            if (!Float.isFinite(weights[i])) {
                throw new IllegalArgumentException("logit mix weight " + i + " must be finite, but was " + weights[i] + ".");
            }
        }
        if (maskRow < -1 || maskRow >= weights.length) {
            throw new IllegalArgumentException("the mask row " + maskRow + " is not one of the mix's " + weights.length + " rows (or -1).");
        }
        if (!(alpha >= 0 && alpha <= 1)) {
            throw new IllegalArgumentException("the plausibility alpha must be in [0, 1], but was " + alpha + ".");
        }
        weights = weights.clone();
    }

    /** The weighted sum of rows with these weights, no mask. */
    public static LogitMix of(float... weights) {
        return new LogitMix(weights, -1, 0);
    }

    /** This mix keeping only the tokens whose probability under {@code row} is at least {@code alpha} times its largest. */
    public LogitMix withMask(int row, double alpha) {
        return new LogitMix(weights, row, alpha);
    }

    @Override
    public float[] weights() {
        return weights.clone();
    }

    /** The number of rows mixed. */
    public int rows() {
        return weights.length;
    }

    /** Whether a mask applies (a mask row and alpha above 0). */
    public boolean masks() {
        return maskRow >= 0 && alpha > 0;
    }

    /** ln(alpha): the least {@code x[m][t] − max} a kept token has (−∞ when alpha is 0). */
    public double logAlpha() {
        return Math.log(alpha);
    }

    /**
     * The mix of {@code rows} (at least {@link #rows()} of them, of equal width; only the first {@link #rows()} are
     * read): the reference every backend's {@link Backend#mixLogits} equals bit for bit.
     */
    public float[] apply(float[][] rows) {
        requireRows(rows.length);
        int width = rows[0].length;
        for (int i = 1; i < weights.length; i++) {
            if (rows[i].length != width) {
                throw new IllegalArgumentException("logit row " + i + " has " + rows[i].length + " values but row 0 has " + width);
            }
        }
        float[] out = new float[width];
        for (int t = 0; t < width; t++) {
            double sum = 0.0;
            for (int i = 0; i < weights.length; i++) {
                sum += (double) weights[i] * rows[i][t];
            }
            out[t] = (float) sum;
        }
        if (masks()) {
            float[] m = rows[maskRow];
            float max = Float.NEGATIVE_INFINITY;
            for (float v : m) {
                if (v > max) {
                    max = v;
                }
            }
            double floor = logAlpha();
            for (int t = 0; t < width; t++) {
                if (!((double) m[t] - (double) max >= floor)) {
                    out[t] = Float.NEGATIVE_INFINITY;
                }
            }
        }
        return out;
    }

    /** Throws unless {@code available} rows are enough for this mix. */
    public void requireRows(long available) {
        if (available < weights.length) {
            throw new IllegalArgumentException("a mix of " + weights.length + " rows was given " + available + " rows of logits");
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LogitMix m && Arrays.equals(weights, m.weights) && maskRow == m.maskRow
                && Double.compare(alpha, m.alpha) == 0;
    }

    @Override
    public int hashCode() {
        return 31 * (31 * Arrays.hashCode(weights) + maskRow) + Double.hashCode(alpha);
    }

    @Override
    public String toString() {
        return "LogitMix" + Arrays.toString(weights) + (masks() ? " mask row " + maskRow + " alpha " + alpha : "");
    }
}
