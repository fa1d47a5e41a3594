package dev.tandem.decoding.sampling;

import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.rng.CounterRng;
import dev.tandem.runtime.rng.RngPurpose;

/**
 * Chooses the next token. Greedy ({@code temperature == 0}): argmax of the logits after the repetition
 * penalty, lowest id on ties. Otherwise: q = softmax({@link LogitsProcessors#apply processed} logits),
 * computed in double, and the token is the first t (in id order) with q_0 + … + q_t &gt; u, where
 * u = {@link CounterRng#uniform}(seed, stream, position, {@link RngPurpose#SAMPLE}, 0). The draw thus
 * depends only on (seed, stream, position), never on batch slot or call order.
 */
public final class Sampler {

    private Sampler() {}

    /**
     * One token from {@code logits} (left unchanged). {@code context[0, contextLength)} feeds the
     * repetition penalty; {@code stream} identifies the request and {@code position} the token's index in
     * its sequence, in [0, 2^32).
     */
    public static int sample(
            float[] logits, SamplingParams p, int[] context, int contextLength, long stream, long position) {
        float[] processed = processedCopy(logits, p, context, contextLength);
        if (p.isGreedy()) {
            return argmax(processed);
        }
        double u = CounterRng.uniform(p.seed(), stream, position, RngPurpose.SAMPLE, 0);
        double[] weight = new double[processed.length];
        double total = weights(processed, weight);
        return inverseCdf(weight, total, u);
    }

    /**
     * The draw of {@link #sample}: the first id t, in increasing order, whose running sum of the
     * positive weights exceeds {@code u · total}. Weights need not be normalised ({@code total} is their
     * sum), which saves a division per token; verifiers that draw from residual distributions use the
     * same routine so that every draw in Tandem follows one rule.
     */
    public static int inverseCdf(double[] weight, double total, double u) {
        double target = u * total;
        double cumulative = 0;
        int last = -1;
        for (int t = 0; t < weight.length; t++) {
            if (weight[t] > 0) {
                cumulative += weight[t];
                last = t;
                if (target < cumulative) {
                    return t;
                }
            }
        }
        return last; // only when rounding put u·total at the very end
    }

    /**
     * The probabilities {@link #sample} draws from, indexed by token id: the processed softmax, or, when
     * greedy, all mass on the argmax.
     */
    public static double[] distribution(float[] logits, SamplingParams p, int[] context, int contextLength) {
        float[] processed = processedCopy(logits, p, context, contextLength);
        double[] q = new double[processed.length];
        if (p.isGreedy()) {
            q[argmax(processed)] = 1.0;
            return q;
        }
        double total = weights(processed, q);
        for (int t = 0; t < q.length; t++) {
            q[t] /= total;
        }
        return q;
    }

    private static float[] processedCopy(float[] logits, SamplingParams p, int[] context, int contextLength) {
        Logits.requireValid(logits);
        float[] copy = logits.clone();
        LogitsProcessors.apply(copy, p, context, contextLength);
        return copy;
    }

    /**
     * The greedy token a backend computed for a row of raw logits ({@code id}, its argmax, lowest id on ties);
     * where it found none ({@code id} = -1: the row holds a NaN or +Infinity, or only -Infinity), throws what
     * {@link #sample} throws for that row's {@code logits}, so both paths refuse a bad row in the same words.
     */
    public static int greedyToken(int id, float[] logits) {
        if (id >= 0) {
            return id;
        }
        if (logits == null) {
            throw new IllegalStateException("the backend found no greedy token in a row but sent back no logits to say why");
        }
        Logits.requireValid(logits);
        int best = argmax(logits); // throws for a row of -Infinity
        throw new IllegalStateException("the backend found no greedy token in a row whose argmax is " + best);
    }

    /**
     * The greedy token of a row a backend summarised; for a row without one, throws what {@link #sample} throws
     * for such a row (a NaN or +Infinity, or nothing but -Infinity).
     */
    public static int greedyToken(LogitSummary summary) {
        if (!summary.valid()) {
            throw new IllegalArgumentException("logits must be finite or -Infinity, but a row held NaN or +Infinity.");
        }
        if (summary.argmax() < 0) {
            throw noToken();
        }
        return summary.argmax();
    }

    /** Lowest id among the largest logits: the greedy choice. */
    public static int argmax(float[] logits) {
        int best = 0;
        for (int t = 1; t < logits.length; t++) {
            if (logits[t] > logits[best]) {
                best = t;
            }
        }
        if (logits[best] == Float.NEGATIVE_INFINITY) {
            throw noToken();
        }
        return best;
    }

    /** Fills weight[t] = exp(l_t − max l) and returns their sum (summed in id order, hence reproducible). */
    private static double weights(float[] logits, double[] weight) {
        float max = Float.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        if (max == Float.NEGATIVE_INFINITY) {
            throw noToken();
        }
        double total = 0;
        for (int t = 0; t < logits.length; t++) {
            // l == max keeps a weight of 1 even if a tiny temperature overflowed the max to +Infinity.
            weight[t] = logits[t] == max ? 1.0 : Math.exp((double) logits[t] - max);
            total += weight[t];
        }
        return total;
    }

    private static IllegalArgumentException noToken() {
        return new IllegalArgumentException("every logit is -Infinity, so there is no token to choose.");
    }
}
