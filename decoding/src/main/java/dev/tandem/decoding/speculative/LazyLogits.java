package dev.tandem.decoding.speculative;

import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;
import java.util.function.IntFunction;

/**
 * The target's logits at the rows of one tree pass, computed from the pass's final normalised hidden states
 * when first asked for ({@link LanguageModel#logitsOfNormed}) and kept. A verifier's walk reads only the
 * root's row and the rows of the nodes it accepts, so the LM head (vocab × hidden multiply-adds a row, most
 * of a tree pass's arithmetic on a large vocabulary) runs for those alone; each row is bit-identical to the
 * logits a pass asking for every row returns. Rows handed out are shared: callers must not modify them.
 */
final class LazyLogits implements IntFunction<float[]> {
    private final LanguageModel model;
    private final float[][] normed;
    private final float[][] logits;
    private int computed;

    /** @param normed the final normalised hidden state of each row, row 0 first */
    LazyLogits(LanguageModel model, float[][] normed) {
        this.model = model;
        this.normed = normed;
        this.logits = new float[normed.length][];
    }

    /** The rows of entry {@code entry} of {@code pass}, which asked for the normed rows of all its rows in order. */
    static LazyLogits of(LanguageModel model, ForwardResult pass, int entry) {
        float[][] normed = new float[pass.normedRows(entry)][];
        for (int k = 0; k < normed.length; k++) {
            normed[k] = pass.normedHidden(entry, k);
        }
        return new LazyLogits(model, normed);
    }

    int rows() {
        return logits.length;
    }

    /** Logits of row {@code r}, computed now if no one asked for them before. */
    float[] row(int r) {
        if (logits[r] == null) {
            prefetch(r);
        }
        return logits[r];
    }

    @Override
    public float[] apply(int r) {
        return row(r);
    }

    /** Computes the missing rows among {@code rows} in one LM-head call (which reads the head's weights once). */
    void prefetch(int... rows) {
        int[] missing = Arrays.stream(rows).filter(r -> logits[r] == null).distinct().toArray();
        if (missing.length == 0) {
            return;
        }
        float[][] in = new float[missing.length][];
        for (int i = 0; i < missing.length; i++) {
            in[i] = normed[missing[i]];
        }
        float[][] out = model.logitsOfNormed(in);
        for (int i = 0; i < missing.length; i++) {
            logits[missing[i]] = out[i];
        }
        computed += missing.length;
    }

    /** Every row's logits (the rows not yet computed in one call), for an observer that looks at all of them. */
    float[][] all() {
        int[] every = new int[logits.length];
        Arrays.setAll(every, r -> r);
        prefetch(every);
        return logits.clone();
    }

    /** Rows whose logits were computed so far: the LM-head work this pass has cost. */
    int computedRows() {
        return computed;
    }
}
