package dev.tandem.decoding.speculative;

import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;

/**
 * What a chain verification pass sends back for its rows: the raw logits of every row, or, where the greedy
 * token alone decides the verdict ({@link dev.tandem.decoding.RequestState#needsOnlyGreedyToken}: greedy, no
 * repetition penalty, no logprobs), only the greedy token of each row. The second form keeps the logits in the
 * backend's memory (a device backend sends back one id a row instead of a vocabulary of floats) and the verdict
 * is the same: {@link ChainVerifier#greedy} takes the argmax of each raw row, which is what the backend's
 * {@code argmax} computes (lowest id on ties). A third form, {@link #KEPT_ON_DEVICE}, says the rows stayed where
 * they were computed, for {@link DeviceVerification}.
 */
final class VerificationRows {
    private final float[][] logits;       // every row's logits, or null when only greedy tokens came back
    private final int[] greedy;           // or each row's greedy token (-1: none, greedyLogits says why)
    private final float[][] greedyLogits;

    /** A pass whose rows stayed in the backend's memory ({@link DeviceVerification}): nothing came back. */
    static final VerificationRows KEPT_ON_DEVICE = new VerificationRows(null, null, null);

    private VerificationRows(float[][] logits, int[] greedy, float[][] greedyLogits) {
        this.logits = logits;
        this.greedy = greedy;
        this.greedyLogits = greedyLogits;
    }

    /** {@code entry} (a pass over {@code rows} rows) asking for what the verification reads: greedy tokens or logits. */
    static Batch.Entry ask(Batch.Entry entry, boolean greedyOnly) {
        int[] every = new int[entry.rows()];
        for (int i = 0; i < every.length; i++) {
            every[i] = i;
        }
        return greedyOnly ? entry.withLogitRows().withGreedyRows(every) : entry.withLogitRows(every);
    }

    /** The rows entry 0 of {@code result} sent back (the pass {@link #ask} planned). */
    static VerificationRows of(ForwardResult result) {
        int n = result.greedyRows(0);
        if (n > 0) {
            int[] greedy = new int[n];
            float[][] why = new float[n][];
            for (int i = 0; i < n; i++) {
                greedy[i] = result.greedyToken(0, i);
                why[i] = greedy[i] < 0 ? result.greedyRowLogits(0, i) : null;
            }
            return new VerificationRows(null, greedy, why);
        }
        int rows = result.rows(0);
        float[][] logits = new float[rows][];
        for (int i = 0; i < rows; i++) {
            logits[i] = result.logits(0, i);
        }
        return new VerificationRows(logits, null, null);
    }

    /** True when only greedy tokens came back. */
    boolean greedyOnly() {
        return greedy != null;
    }

    /** The raw logits of row {@code i}, or null when only greedy tokens came back (they then feed no logprobs). */
    float[] logits(int i) {
        return logits == null ? null : logits[i];
    }

    /** All rows' logits; only when {@link #greedyOnly} is false. */
    float[][] allLogits() {
        if (logits == null) {
            throw new IllegalStateException("this verification pass sent back greedy tokens, not logits");
        }
        return logits;
    }

    /** Row {@code i}'s greedy token; where the backend found none, the refusal {@link Sampler} gives for that row. */
    int greedyToken(int i) {
        return Sampler.greedyToken(greedy[i], greedyLogits[i]);
    }
}
