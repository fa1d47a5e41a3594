package dev.tandem.decoding.speculative;

import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.runtime.Placement;
import dev.tandem.transformer.Batch;
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
    private final int[] greedy;           // or, for a pass that sent back greedy tokens only, each row's (-1: none)
    private final float[][] greedyLogits; // the logits of a row without a greedy token, to say why
    private int computed;

    /** @param normed the final normalised hidden state of each row, row 0 first */
    LazyLogits(LanguageModel model, float[][] normed) {
        this.model = model;
        this.normed = normed;
        this.logits = new float[normed.length][];
        this.greedy = null;
        this.greedyLogits = null;
    }

    private LazyLogits(int[] greedy, float[][] greedyLogits) {
        this.model = null;
        this.normed = null;
        this.logits = new float[greedy.length][];
        this.greedy = greedy;
        this.greedyLogits = greedyLogits;
    }

    /**
     * {@code entry}, a tree pass, asking for what the walk reads. On a host backend: the normed rows of all its
     * rows (the LM head then runs for the visited rows alone). On a device backend, where only the greedy token
     * decides ({@code greedyOnly}): every row's greedy token, so the LM head runs once for every row on the
     * device (the head's weights are read once whatever the row count) and only ids come back, instead of a
     * normed row out and a row of logits back per visited node.
     */
    static Batch.Entry ask(Batch.Entry entry, LanguageModel model, boolean greedyOnly) {
        if (greedyOnly && model.backend().placement() == Placement.DEVICE) {
            int[] every = new int[entry.rows()];
            Arrays.setAll(every, r -> r);
            return entry.withLogitRows().withGreedyRows(every);
        }
        return entry.withAllNormedRows();
    }

    /** The rows of entry {@code entry} of {@code pass}, which asked for them with {@link #ask} (or for every normed row, in order). */
    static LazyLogits of(LanguageModel model, ForwardResult pass, int entry) {
        int greedyRows = pass.greedyRows(entry);
        if (greedyRows > 0) {
            int[] ids = new int[greedyRows];
            float[][] why = new float[greedyRows][];
            for (int k = 0; k < greedyRows; k++) {
                ids[k] = pass.greedyToken(entry, k);
                why[k] = ids[k] < 0 ? pass.greedyRowLogits(entry, k) : null;
            }
            return new LazyLogits(ids, why);
        }
        float[][] normed = new float[pass.normedRows(entry)][];
        for (int k = 0; k < normed.length; k++) {
            normed[k] = pass.normedHidden(entry, k);
        }
        return new LazyLogits(model, normed);
    }

    int rows() {
        return logits.length;
    }

    /** True when the pass sent back greedy tokens only: {@link #greedyToken} answers, {@link #row} gives null. */
    boolean greedyOnly() {
        return greedy != null;
    }

    /** The greedy token of row {@code r} (the argmax of its raw logits, lowest id on ties). */
    int greedyToken(int r) {
        return greedy != null ? Sampler.greedyToken(greedy[r], greedyLogits[r]) : Sampler.argmax(row(r));
    }

    /** Logits of row {@code r}, computed now if no one asked for them before; null for a {@link #greedyOnly} pass. */
    float[] row(int r) {
        if (greedy != null) {
            return null;
        }
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
        if (greedy != null) {
            return;
        }
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
        if (greedy != null) {
            throw new IllegalStateException("this pass sent back greedy tokens, not logits");
        }
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
