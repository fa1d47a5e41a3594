package dev.tandem.decoding.sampling;

import java.util.Arrays;
import java.util.BitSet;
import java.util.Objects;

/**
 * In-place logits transforms with the semantics of Hugging Face transformers' processors of the same
 * names. A removed token gets −Infinity. With l the logits and p = softmax(l):
 * <pre>
 *   repetition penalty (r): for each distinct token t in the context, l_t ← l_t / r if l_t ≥ 0, l_t · r if l_t &lt; 0
 *   temperature (T):        l ← l / T
 *   top-k (k):              remove t if l_t &lt; the k-th largest logit   (every logit tied with the k-th stays)
 *   top-p (P):              rank tokens by l descending; remove t if the mass of t and every token ranked
 *                           below it is ≤ 1 − P; the top-ranked token always stays
 *   min-p (m):              remove t if p_t &lt; m · max p, i.e. exp(l_t − max l) &lt; m
 * </pre>
 * Top-p is the smallest top-ranked set with mass ≥ P. Its ranking breaks ties by lower token id first
 * (HF's sort leaves tie order unspecified), so among equal logits at the cut the lower ids are kept. Top-k
 * needs no tie rule: as in HF, it keeps every token tied with the k-th largest logit, so more than k
 * tokens may stay. Probabilities are computed in double (HF uses float32); they differ only where a mass
 * lands within rounding of a threshold. Logits must not be NaN.
 */
public final class LogitsProcessors {

    private LogitsProcessors() {}

    /**
     * Applies, in HF's order, repetition penalty, temperature, top-k, top-p and min-p, skipping each one
     * that is off. When {@code p} is greedy only the repetition penalty applies (HF uses the others only
     * when sampling). {@code context[0, contextLength)} is the prompt plus the tokens generated so far.
     */
    public static void apply(float[] logits, SamplingParams p, int[] context, int contextLength) {
        if (p.repetitionPenalty() != 1f) {
            repetitionPenalty(logits, context, contextLength, p.repetitionPenalty());
        }
        if (p.isGreedy()) {
            return;
        }
        if (p.temperature() != 1f) {
            temperature(logits, p.temperature());
        }
        if (p.topK() > 0) {
            topK(logits, p.topK());
        }
        if (p.topP() < 1f) {
            topP(logits, p.topP());
        }
        if (p.minP() > 0f) {
            minP(logits, p.minP());
        }
    }

    /** Penalizes each distinct token of {@code context[0, contextLength)} once; penalty &gt; 0. */
    public static void repetitionPenalty(float[] logits, int[] context, int contextLength, float penalty) {
        for (int t : distinctContextTokens(logits.length, context, contextLength, penalty)) {
            float l = logits[t];
            logits[t] = l < 0 ? l * penalty : l / penalty;
        }
    }

    /**
     * The same rule on scores held in double: beam search applies HF's processors to log-probabilities
     * (log_softmax first), where every score is ≤ 0, so each context token's score is multiplied by the penalty.
     */
    public static void repetitionPenalty(double[] scores, int[] context, int contextLength, float penalty) {
        for (int t : distinctContextTokens(scores.length, context, contextLength, penalty)) {
            double s = scores[t];
            scores[t] = s < 0 ? s * penalty : s / penalty;
        }
    }

    /** The tokens of {@code context[0, contextLength)}, each once (a repeated token is penalized once), checked. */
    private static int[] distinctContextTokens(int vocabSize, int[] context, int contextLength, float penalty) {
        if (!(penalty > 0) || Float.isInfinite(penalty)) {
            throw new IllegalArgumentException(
                    "repetitionPenalty must be a finite number > 0, but was " + penalty + ".");
        }
        Objects.requireNonNull(context, "context");
        if (contextLength < 0 || contextLength > context.length) {
            throw new IllegalArgumentException("contextLength must be in [0, " + context.length
                    + "] (the context array's length), but was " + contextLength + ".");
        }
        BitSet seen = new BitSet(vocabSize);
        for (int i = 0; i < contextLength; i++) {
            int t = context[i];
            if (t < 0 || t >= vocabSize) {
                throw new IllegalArgumentException("context token " + i + " must be in [0, " + vocabSize
                        + ") (the vocabulary size), but was " + t + ".");
            }
            seen.set(t);
        }
        return seen.stream().toArray();
    }

    /** Divides every logit by {@code temperature} (finite, &gt; 0). */
    public static void temperature(float[] logits, float temperature) {
        if (!(temperature > 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException(
                    "temperature must be a finite number > 0 here (0 means greedy, handled by the Sampler), but was "
                            + temperature + ".");
        }
        for (int i = 0; i < logits.length; i++) {
            logits[i] /= temperature;
        }
    }

    /** Keeps the {@code k} (≥ 1) largest logits and every logit equal to the k-th largest. */
    public static void topK(float[] logits, int k) {
        if (k < 1) {
            throw new IllegalArgumentException("topK must be >= 1 here (0 means off in SamplingParams), but was " + k + ".");
        }
        float[] finite = new float[logits.length];
        int m = 0;
        for (float l : logits) {
            if (l != Float.NEGATIVE_INFINITY) {
                finite[m++] = l;
            }
        }
        if (m <= k) {
            return; // the k-th largest is −Infinity (or there is no k-th): nothing is below it
        }
        Arrays.sort(finite, 0, m);
        float kth = finite[m - k];
        for (int i = 0; i < logits.length; i++) {
            if (logits[i] < kth) {
                logits[i] = Float.NEGATIVE_INFINITY;
            }
        }
    }

    /** Keeps the smallest top-ranked set with probability mass ≥ {@code topP} (in (0, 1]); ties: lower id first. */
    public static void topP(float[] logits, float topP) {
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("topP must be in (0, 1], but was " + topP + ".");
        }
        int[] order = Logits.descendingOrder(logits, true);
        int m = order.length;
        if (m <= 1) {
            return;
        }
        double max = logits[order[0]];
        double[] weight = new double[m];
        double total = 0;
        for (int j = 0; j < m; j++) {
            weight[j] = Math.exp(logits[order[j]] - max);
            total += weight[j];
        }
        // HF's form: cumulate from the least probable upwards, drop while the cumulative mass ≤ 1 − topP.
        double threshold = 1.0 - topP;
        double tail = 0;
        for (int j = m - 1; j > 0; j--) {
            tail += weight[j] / total;
            if (tail > threshold) {
                break;
            }
            logits[order[j]] = Float.NEGATIVE_INFINITY;
        }
    }

    /** Keeps tokens whose probability is at least {@code minP} (in [0, 1)) times the largest probability. */
    public static void minP(float[] logits, float minP) {
        if (!(minP >= 0 && minP < 1)) {
            throw new IllegalArgumentException("minP must be in [0, 1), but was " + minP + ".");
        }
        float max = Float.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        if (max == Float.NEGATIVE_INFINITY) {
            return;
        }
        // p_t / p_max = exp(l_t − l_max): the softmax normalizer cancels.
        for (int i = 0; i < logits.length; i++) {
            if (Math.exp((double) logits[i] - max) < minP) {
                logits[i] = Float.NEGATIVE_INFINITY;
            }
        }
    }
}
