package dev.tandem.decoding.sampling;

import java.util.ArrayList;
import java.util.List;

/**
 * Log-probabilities of raw logits: log_softmax(l)_t = l_t − (m + ln Σ_s exp(l_s − m)), m = max l,
 * computed in double (subtracting m keeps exp from overflowing) and rounded to float once.
 */
public final class LogProbs {

    private LogProbs() {}

    /** log_softmax of {@code logits} (left unchanged); −Infinity logits get −Infinity. */
    public static float[] logSoftmax(float[] logits) {
        double logNormalizer = logNormalizer(logits);
        float[] out = new float[logits.length];
        for (int t = 0; t < logits.length; t++) {
            out[t] = (float) (logits[t] - logNormalizer);
        }
        return out;
    }

    /**
     * m + ln Σ_s exp(l_s − m): log_softmax(l)_t = l_t − this. A caller that keeps log-probabilities in double
     * (beam search's scores) subtracts it itself; rounded to float, that is {@link #logSoftmax}'s value.
     */
    public static double logNormalizer(float[] logits) {
        Logits.requireValid(logits);
        float max = Float.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        if (max == Float.NEGATIVE_INFINITY) {
            throw new IllegalArgumentException("every logit is -Infinity, so log-probabilities are undefined.");
        }
        double sum = 0;
        for (float l : logits) {
            sum += Math.exp((double) l - max);
        }
        return max + Math.log(sum);
    }

    /** The {@code n} (≥ 0; capped at the vocabulary size) most probable tokens, by logprob descending, then id. */
    public static List<TokenLogprob> top(float[] logits, int n) {
        if (n < 0) {
            throw new IllegalArgumentException("n must be >= 0, but was " + n + ".");
        }
        float[] logprobs = logSoftmax(logits);
        int[] order = Logits.descendingOrder(logprobs, false);
        int count = Math.min(n, order.length);
        List<TokenLogprob> result = new ArrayList<>(count);
        for (int j = 0; j < count; j++) {
            result.add(new TokenLogprob(order[j], logprobs[order[j]]));
        }
        return List.copyOf(result);
    }
}
