package dev.tandem.transformer;

import java.util.Arrays;

/** Logits of one forward pass, for the rows each {@link Batch.Entry} asked for, in entry order. */
public final class ForwardResult {
    private final float[][][] logits;

    public ForwardResult(float[][][] logits) {
        this.logits = logits;
    }

    /** Logits of the {@code k}-th requested row of entry {@code entry} (the caller may modify it). */
    public float[] logits(int entry, int k) {
        return logits[entry][k];
    }

    /** Logits of the last requested row of entry {@code entry}. */
    public float[] lastLogits(int entry) {
        float[][] rows = logits[entry];
        return rows[rows.length - 1];
    }

    public int entries() {
        return logits.length;
    }

    public int rows(int entry) {
        return logits[entry].length;
    }

    @Override
    public String toString() {
        return "ForwardResult" + Arrays.stream(logits).map(r -> r.length).toList();
    }
}
