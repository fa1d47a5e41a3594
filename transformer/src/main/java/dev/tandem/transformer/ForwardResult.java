package dev.tandem.transformer;

import dev.tandem.runtime.LogitSummary;

import java.util.Arrays;

/**
 * The outputs of one forward pass, for the rows each {@link Batch.Entry} asked for, in entry order:
 * logits, greedy tokens, logit summaries, hidden states at chosen layers, final normalised hidden states, and the
 * logits of chosen decoder layers. Arrays returned belong to the caller (it may modify them).
 */
public final class ForwardResult {
    private static final int[] NO_LAYERS = new int[0];

    private final float[][][] logits;
    private final int[][] hiddenLayers;
    private final float[][][][] hidden;
    private final float[][][] normed;
    private final int[][] greedy;
    private final float[][][] greedyRowLogits;
    private final LogitSummary[][] summaries;
    private final int[][] layerLogitLayers;
    private final float[][][] layerLogits;

    /** Logits only: {@code logits[entry][k]} for the k-th requested row. */
    public ForwardResult(float[][][] logits) {
        this(logits, null, null, null);
    }

    /**
     * @param logits       {@code [entry][k]}: logits of the k-th requested logit row
     * @param hiddenLayers {@code [entry]}: the layers whose hidden states were requested (null: none)
     * @param hidden       {@code [entry][i][k]}: hidden state at layer {@code hiddenLayers[entry][i]} of the k-th requested hidden row
     * @param normed       {@code [entry][k]}: final normalised hidden state of the k-th requested normed row
     */
    public ForwardResult(float[][][] logits, int[][] hiddenLayers, float[][][][] hidden, float[][][] normed) {
        this(logits, hiddenLayers, hidden, normed, null, null);
    }

    /**
     * The same with greedy tokens.
     *
     * @param greedy          {@code [entry][k]}: greedy token of the k-th requested greedy row, -1 where the row
     *                        has none (a NaN or +Infinity logit, or nothing but -Infinity)
     * @param greedyRowLogits {@code [entry][k]}: the logits of the k-th greedy row where it has no greedy token
     *                        (so the caller can say why), else null
     */
    public ForwardResult(float[][][] logits, int[][] hiddenLayers, float[][][][] hidden, float[][][] normed, int[][] greedy,
                         float[][][] greedyRowLogits) {
        this(logits, hiddenLayers, hidden, normed, greedy, greedyRowLogits, null);
    }

    /**
     * The same with logit summaries.
     *
     * @param summaries {@code [entry][k]}: the {@link LogitSummary} of the k-th requested summary row
     */
    public ForwardResult(float[][][] logits, int[][] hiddenLayers, float[][][][] hidden, float[][][] normed, int[][] greedy,
                         float[][][] greedyRowLogits, LogitSummary[][] summaries) {
        this(logits, hiddenLayers, hidden, normed, greedy, greedyRowLogits, summaries, null, null);
    }

    /**
     * The same with layer logits.
     *
     * @param layerLogitLayers {@code [entry]}: the decoder layers whose logits the entry asked for to be returned (null: none)
     * @param layerLogits      {@code [entry][i]}: the logits of layer {@code layerLogitLayers[entry][i]} at the entry's row
     */
    public ForwardResult(float[][][] logits, int[][] hiddenLayers, float[][][][] hidden, float[][][] normed, int[][] greedy,
                         float[][][] greedyRowLogits, LogitSummary[][] summaries, int[][] layerLogitLayers,
                         float[][][] layerLogits) {
        this.layerLogitLayers = layerLogitLayers;
        this.layerLogits = layerLogits;
        this.summaries = summaries;
        this.logits = logits;
        this.hiddenLayers = hiddenLayers;
        this.hidden = hidden;
        this.normed = normed;
        this.greedy = greedy;
        this.greedyRowLogits = greedyRowLogits;
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

    /** Number of logit rows entry {@code entry} asked for. */
    public int rows(int entry) {
        return logits[entry].length;
    }

    /** The layers whose hidden states entry {@code entry} asked for, in request order. */
    public int[] hiddenLayers(int entry) {
        return hiddenLayers == null || hiddenLayers[entry] == null ? NO_LAYERS.clone() : hiddenLayers[entry].clone();
    }

    /** Number of rows whose hidden states entry {@code entry} asked for. */
    public int hiddenRows(int entry) {
        if (hidden == null || hidden[entry] == null || hidden[entry].length == 0) {
            return 0;
        }
        return hidden[entry][0].length;
    }

    /**
     * Hidden state (width hidden_size) of the {@code k}-th requested hidden row of entry {@code entry}
     * at layer {@code layer}: 0 is the embedding output (or the given embedding row), l the residual
     * stream after block l.
     *
     * @throws IllegalArgumentException if the entry did not ask for that layer
     */
    public float[] hiddenState(int entry, int layer, int k) {
        int[] layers = hiddenLayers == null ? null : hiddenLayers[entry];
        if (layers != null) {
            for (int i = 0; i < layers.length; i++) {
                if (layers[i] == layer) {
                    return hidden[entry][i][k];
                }
            }
        }
        throw new IllegalArgumentException("entry " + entry + " did not ask for the hidden states of layer " + layer);
    }

    /** Number of rows whose final normalised hidden state entry {@code entry} asked for. */
    public int normedRows(int entry) {
        return normed == null || normed[entry] == null ? 0 : normed[entry].length;
    }

    /** Final normalised hidden state (the LM head's input) of the {@code k}-th requested normed row of entry {@code entry}. */
    public float[] normedHidden(int entry, int k) {
        return normed[entry][k];
    }

    /** Number of rows whose greedy token entry {@code entry} asked for. */
    public int greedyRows(int entry) {
        return greedy == null || greedy[entry] == null ? 0 : greedy[entry].length;
    }

    /**
     * The greedy token (argmax of the raw logits, lowest id on ties) of the {@code k}-th requested greedy row of
     * entry {@code entry}, or -1 when that row has none: then {@link #greedyRowLogits} holds its logits.
     */
    public int greedyToken(int entry, int k) {
        return greedy[entry][k];
    }

    /** The logits of the {@code k}-th greedy row of entry {@code entry} when it has no greedy token, else null. */
    public float[] greedyRowLogits(int entry, int k) {
        return greedyRowLogits == null || greedyRowLogits[entry] == null ? null : greedyRowLogits[entry][k];
    }

    /** Number of rows whose logit summary entry {@code entry} asked for. */
    public int summaryRows(int entry) {
        return summaries == null || summaries[entry] == null ? 0 : summaries[entry].length;
    }

    /** The {@link LogitSummary} of the {@code k}-th requested summary row of entry {@code entry}. */
    public LogitSummary summary(int entry, int k) {
        return summaries[entry][k];
    }

    /** The decoder layers whose logits entry {@code entry} asked for ({@link Batch.Entry#withLayerLogits}), in request order. */
    public int[] layerLogitLayers(int entry) {
        return layerLogitLayers == null || layerLogitLayers[entry] == null ? NO_LAYERS.clone() : layerLogitLayers[entry].clone();
    }

    /**
     * The logits of decoder layer {@code layer} (0-based: its output through the final norm and the LM head) at the row
     * entry {@code entry} asked for with {@link Batch.Entry#withLayerLogits} (the caller may modify them).
     *
     * @throws IllegalArgumentException if the entry did not ask for that layer's logits to be returned
     */
    public float[] layerLogits(int entry, int layer) {
        int[] layers = layerLogitLayers == null ? null : layerLogitLayers[entry];
        if (layers != null) {
            for (int i = 0; i < layers.length; i++) {
                if (layers[i] == layer) {
                    return layerLogits[entry][i];
                }
            }
        }
        throw new IllegalArgumentException("entry " + entry + " did not ask for the logits of layer " + layer);
    }

    /**
     * The results of entries {@code [from, from + count)} as a result of their own (entry {@code from}
     * becomes entry 0), sharing the arrays: how a pass shared by several requests hands each its part.
     */
    public ForwardResult slice(int from, int count) {
        if (from < 0 || count < 0 || from + count > logits.length) {
            throw new IndexOutOfBoundsException("entries [" + from + ", " + (from + count) + ") of " + logits.length);
        }
        return new ForwardResult(Arrays.copyOfRange(logits, from, from + count),
                hiddenLayers == null ? null : Arrays.copyOfRange(hiddenLayers, from, from + count),
                hidden == null ? null : Arrays.copyOfRange(hidden, from, from + count),
                normed == null ? null : Arrays.copyOfRange(normed, from, from + count),
                greedy == null ? null : Arrays.copyOfRange(greedy, from, from + count),
                greedyRowLogits == null ? null : Arrays.copyOfRange(greedyRowLogits, from, from + count),
                summaries == null ? null : Arrays.copyOfRange(summaries, from, from + count),
                layerLogitLayers == null ? null : Arrays.copyOfRange(layerLogitLayers, from, from + count),
                layerLogits == null ? null : Arrays.copyOfRange(layerLogits, from, from + count));
    }

    @Override
    public String toString() {
        return "ForwardResult" + Arrays.stream(logits).map(r -> r.length).toList();
    }
}
