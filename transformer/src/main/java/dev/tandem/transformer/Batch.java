package dev.tandem.transformer;

import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvSequence;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The unit of work of one forward pass: for each sequence, its KV-cache handle, the new rows (token
 * ids or embedding vectors) with their positions, the attention shape of those rows (causal, tree,
 * bidirectional, segments), and the outputs wanted (logits, hidden states, final normalised hidden
 * states at chosen rows, the logits of chosen decoder layers). Decode is one row per sequence; prefill
 * is many rows of one sequence; tree verification and segment prefill are one entry each; all are the
 * same call.
 */
public final class Batch {

    /**
     * One sequence's part of a batch. Build one with {@link #continuation}, {@link #of} or
     * {@link #ofEmbeddings} and add outputs with the {@code with…} methods.
     *
     * @param kv           the sequence's cache; the new rows are appended to it in row order
     * @param tokens       the new rows' token ids, or null when every row is given in {@code embeddings}
     * @param embeddings   the new rows as vectors of the model's hidden size, fed straight into the
     *                     first layer instead of the embedding lookup; null when every row is a token. With both
     *                     given (one entry per row each), row i is the vector {@code embeddings[i]} where that is
     *                     non-null and the token {@code tokens[i]} where it is null ({@link #ofRows}); a vector row's
     *                     token id is ignored
     * @param positions    the new rows' positions (for a causal chain: kv.length() .. kv.length()+n−1;
     *                     any positions in the model's context otherwise, e.g. prefix length + depth in a tree)
     * @param shape        what the new rows attend to
     * @param logitRows    row indices whose logits the caller wants, in output order
     * @param hiddenLayers layers whose hidden states the caller wants: 0 is the embedding output, l
     *                     (1..numLayers) the residual stream after block l
     * @param hiddenRows   row indices whose hidden states (at every layer of {@code hiddenLayers}) are wanted, in output order
     * @param normedRows   row indices whose final normalised hidden state (the LM head's input) is wanted, in output order
     * @param greedyRows   row indices whose greedy token (the argmax of the raw logits, lowest id on ties) is wanted,
     *                     in output order: computed where the logits are, only the ids come back
     * @param summaryRows  row indices whose {@link LogitSummary} of the raw logits is wanted, in output order:
     *                     computed where the logits are, only the summaries come back
     * @param summaryK     the top ids each summary keeps (1 to {@link LogitSummary#MAX_K}; 0 when no summary is wanted)
     * @param logitsInto   rows whose logits are copied into a tensor of the model's backend and stay there (for
     *                     ops that run where the logits are, e.g. verification on a device), or null
     * @param layerLogits  decoder layers whose output at one row goes through the final norm and the LM head (an
     *                     early exit: what layer-contrast decoding compares), returned or kept on the backend; or null
     */
    public record Entry(KvSequence kv, int[] tokens, float[][] embeddings, int[] positions, AttentionShape shape,
                        int[] logitRows, int[] hiddenLayers, int[] hiddenRows, int[] normedRows, int[] greedyRows,
                        int[] summaryRows, int summaryK, LogitsInto logitsInto, LayerLogits layerLogits) {
        private static final int[] NONE = new int[0];

        public Entry {
            Objects.requireNonNull(kv, "kv");
            Objects.requireNonNull(shape, "shape");
            Objects.requireNonNull(positions, "positions");
            if (tokens == null && embeddings == null) {
                throw new IllegalArgumentException("a batch entry takes its rows as token ids, embeddings or both, not neither");
            }
            int n = tokens != null ? tokens.length : embeddings.length;
            if (n == 0) {
                throw new IllegalArgumentException("a batch entry needs at least one new row");
            }
            if (embeddings != null) {
                if (tokens != null && tokens.length != embeddings.length) {
                    throw new IllegalArgumentException(tokens.length + " token ids but " + embeddings.length
                            + " embedding slots: a mixed entry has one of each per row");
                }
                int width = -1;
                for (int i = 0; i < n; i++) {
                    if (embeddings[i] == null) {
                        if (tokens == null) {
                            throw new IllegalArgumentException("embedding row " + i + " is missing and the entry has no token ids");
                        }
                    } else if (width < 0) {
                        width = embeddings[i].length;
                    } else if (embeddings[i].length != width) {
                        throw new IllegalArgumentException("embedding row " + i + " differs in width from the entry's first vector row");
                    }
                }
                if (width < 0) {
                    embeddings = null; // no vector row: a token entry
                }
            }
            if (positions.length != n) {
                throw new IllegalArgumentException(n + " rows but " + positions.length + " positions");
            }
            logitRows = checkRows(logitRows, n, "logit row");
            hiddenRows = checkRows(hiddenRows, n, "hidden-state row");
            normedRows = checkRows(normedRows, n, "normed row");
            greedyRows = checkRows(greedyRows, n, "greedy row");
            summaryRows = checkRows(summaryRows, n, "summary row");
            if (logitsInto != null) {
                checkRows(logitsInto.rows(), n, "kept logit row");
            }
            if (layerLogits != null) {
                checkRows(new int[] {layerLogits.row()}, n, "layer-logit row");
            }
            if (summaryRows.length > 0) {
                LogitSummary.requireK(summaryK);
            } else {
                summaryK = 0;
            }
            hiddenLayers = hiddenLayers == null ? NONE : hiddenLayers;
            for (int l : hiddenLayers) {
                if (l < 0) {
                    throw new IllegalArgumentException("hidden-state layer " + l + " is negative");
                }
            }
            shape.validate(n);
        }

        private static int[] checkRows(int[] rows, int n, String what) {
            if (rows == null) {
                return NONE;
            }
            for (int r : rows) {
                if (r < 0 || r >= n) {
                    throw new IllegalArgumentException(what + " " + r + " is outside the entry's " + n + " rows");
                }
            }
            return rows;
        }

        /** Token rows with logits at {@code logitRows} and no other output. */
        public Entry(KvSequence kv, int[] tokens, int[] positions, AttentionShape shape, int[] logitRows) {
            this(kv, tokens, null, positions, shape, logitRows, NONE, NONE, NONE, NONE, NONE, 0, null, null);
        }

        /** Token rows at explicit positions with a shape and no outputs yet (add them with {@code with…}). */
        public static Entry of(KvSequence kv, int[] tokens, int[] positions, AttentionShape shape) {
            return new Entry(kv, tokens.clone(), null, positions.clone(), shape, NONE, NONE, NONE, NONE, NONE, NONE, 0, null, null);
        }

        /** Embedding rows ({@code [rows][hidden]}) at explicit positions with a shape and no outputs yet. */
        public static Entry ofEmbeddings(KvSequence kv, float[][] embeddings, int[] positions, AttentionShape shape) {
            float[][] copy = new float[embeddings.length][];
            for (int i = 0; i < copy.length; i++) {
                copy[i] = embeddings[i] == null ? null : embeddings[i].clone();
            }
            return new Entry(kv, null, copy, positions.clone(), shape, NONE, NONE, NONE, NONE, NONE, NONE, 0, null, null);
        }

        /**
         * Rows that are token ids or vectors, at explicit positions with a shape and no outputs yet: row i is
         * {@code vectors[i]} (fed into layer 0 as its input embedding) where that is non-null, else token
         * {@code tokens[i]}; {@code vectors} itself may be null (every row a token). A row gives the model the same
         * input whether it comes in a mixed entry or in an entry of its own kind.
         */
        public static Entry ofRows(KvSequence kv, int[] tokens, float[][] vectors, int[] positions, AttentionShape shape) {
            float[][] copy = null;
            if (vectors != null) {
                copy = new float[vectors.length][];
                for (int i = 0; i < copy.length; i++) {
                    copy[i] = vectors[i] == null ? null : vectors[i].clone();
                }
            }
            return new Entry(kv, tokens.clone(), copy, positions.clone(), shape, NONE, NONE, NONE, NONE, NONE, NONE, 0, null, null);
        }

        /** Mixed rows ({@link #ofRows}) continuing {@code kv} causally, with logits at the last row only. */
        public static Entry continuationOfRows(KvSequence kv, int[] tokens, float[][] vectors) {
            return ofRows(kv, tokens, vectors, continuingPositions(kv, tokens.length), AttentionShape.CAUSAL)
                    .withLogitRows(tokens.length - 1);
        }

        /** New tokens continuing {@code kv} causally, with logits at the last row only. */
        public static Entry continuation(KvSequence kv, int... tokens) {
            return new Entry(kv, tokens.clone(), continuingPositions(kv, tokens.length), AttentionShape.CAUSAL,
                    new int[] {tokens.length - 1});
        }

        /** Like {@link #continuation} but with logits at every row. */
        public static Entry continuationAllLogits(KvSequence kv, int... tokens) {
            return continuation(kv, tokens).withLogitRows(allRows(tokens.length));
        }

        /** Embedding rows continuing {@code kv} causally, with logits at the last row only. */
        public static Entry continuationOfEmbeddings(KvSequence kv, float[][] embeddings) {
            return ofEmbeddings(kv, embeddings, continuingPositions(kv, embeddings.length), AttentionShape.CAUSAL)
                    .withLogitRows(embeddings.length - 1);
        }

        private static int[] continuingPositions(KvSequence kv, int n) {
            int[] positions = new int[n];
            for (int i = 0; i < n; i++) {
                positions[i] = kv.length() + i;
            }
            return positions;
        }

        private static int[] allRows(int n) {
            int[] all = new int[n];
            Arrays.setAll(all, i -> i);
            return all;
        }

        /** Number of new rows. */
        public int rows() {
            return tokens != null ? tokens.length : embeddings.length;
        }

        /** True when some row is given as an embedding vector rather than a token id. */
        public boolean hasEmbeddings() {
            return embeddings != null;
        }

        /** True when row {@code i} is an embedding vector, false when it is a token id. */
        public boolean isVectorRow(int i) {
            return embeddings != null && embeddings[i] != null;
        }

        /** This entry with another attention shape. */
        public Entry withShape(AttentionShape shape) {
            return new Entry(kv, tokens, embeddings, positions, shape, logitRows, hiddenLayers, hiddenRows, normedRows, greedyRows,
                    summaryRows, summaryK, logitsInto, layerLogits);
        }

        /** This entry with logits at {@code rows} (in output order) instead. */
        public Entry withLogitRows(int... rows) {
            return new Entry(kv, tokens, embeddings, positions, shape, rows.clone(), hiddenLayers, hiddenRows, normedRows, greedyRows,
                    summaryRows, summaryK, logitsInto, layerLogits);
        }

        /** This entry with logits at every row. */
        public Entry withAllLogits() {
            return withLogitRows(allRows(rows()));
        }

        /**
         * This entry also returning the hidden states at each of {@code layers} (0 = embedding output,
         * l = after block l) for each of {@code rows}.
         */
        public Entry withHiddenStates(int[] layers, int... rows) {
            return new Entry(kv, tokens, embeddings, positions, shape, logitRows, layers.clone(), rows.clone(), normedRows, greedyRows,
                    summaryRows, summaryK, logitsInto, layerLogits);
        }

        /** This entry also returning the final normalised hidden state (the LM head's input) at {@code rows}. */
        public Entry withNormedRows(int... rows) {
            return new Entry(kv, tokens, embeddings, positions, shape, logitRows, hiddenLayers, hiddenRows, rows.clone(), greedyRows,
                    summaryRows, summaryK, logitsInto, layerLogits);
        }

        /**
         * This entry also returning the greedy token (argmax of the raw logits, lowest id on ties) of each of
         * {@code rows}: the LM head runs on the model's backend and only the ids come back, not the logits
         * ({@link ForwardResult#greedyToken}).
         */
        public Entry withGreedyRows(int... rows) {
            return new Entry(kv, tokens, embeddings, positions, shape, logitRows, hiddenLayers, hiddenRows, normedRows, rows.clone(),
                    summaryRows, summaryK, logitsInto, layerLogits);
        }

        /**
         * This entry also returning the {@link LogitSummary} of each of {@code rows}' raw logits, keeping {@code k}
         * top ids: the LM head and the summary run on the model's backend and only the summaries come back
         * ({@link ForwardResult#summary}).
         */
        public Entry withSummaryRows(int k, int... rows) {
            return new Entry(kv, tokens, embeddings, positions, shape, logitRows, hiddenLayers, hiddenRows, normedRows, greedyRows,
                    rows.clone(), k, logitsInto, layerLogits);
        }

        /**
         * This entry also copying the raw logits of {@code rows} into rows {@code [from, from + rows.length)} of
         * {@code into} (f32, [n, vocab], allocated by the model's backend), where they stay for ops that run
         * there; nothing about them comes back to the caller.
         */
        public Entry withLogitsInto(Tensor into, int from, int... rows) {
            return new Entry(kv, tokens, embeddings, positions, shape, logitRows, hiddenLayers, hiddenRows, normedRows, greedyRows,
                    summaryRows, summaryK, new LogitsInto(into, from, rows.clone()), layerLogits);
        }

        /**
         * This entry also returning, for each of {@code layers} (0-based decoder layers, each 0 to numLayers − 1), the
         * logits of that layer's output at {@code row}: its hidden state through the model's final norm and LM head,
         * computed on the model's backend in the same product as the pass's other logits
         * ({@link ForwardResult#layerLogits}). The last layer's are the row's ordinary logits, bit for bit.
         */
        public Entry withLayerLogits(int[] layers, int row) {
            return new Entry(kv, tokens, embeddings, positions, shape, logitRows, hiddenLayers, hiddenRows, normedRows, greedyRows,
                    summaryRows, summaryK, logitsInto, new LayerLogits(layers.clone(), row, null, 0));
        }

        /**
         * As {@link #withLayerLogits} but the logits stay on the model's backend: layer {@code layers[i]}'s go to row
         * {@code from + i} of {@code into} (f32, [n, vocab], allocated by the model's backend), for ops that run where
         * the logits are (a {@link dev.tandem.runtime.LogitMix}); nothing about them comes back to the caller.
         */
        public Entry withLayerLogitsInto(Tensor into, int from, int[] layers, int row) {
            Objects.requireNonNull(into, "into");
            return new Entry(kv, tokens, embeddings, positions, shape, logitRows, hiddenLayers, hiddenRows, normedRows, greedyRows,
                    summaryRows, summaryK, logitsInto, new LayerLogits(layers.clone(), row, into, from));
        }

        /** This entry also returning the final normalised hidden state at every row. */
        public Entry withAllNormedRows() {
            return withNormedRows(allRows(rows()));
        }
    }

    /** Where {@link Entry#withLogitsInto} copies its rows' logits: rows {@code [from, from + rows.length)} of {@code into}. */
    public record LogitsInto(Tensor into, int from, int[] rows) {
        public LogitsInto {
            Objects.requireNonNull(into, "into");
            if (from < 0 || rows.length == 0 || from + rows.length > into.dim(0)) {
                throw new IllegalArgumentException("logits of " + rows.length + " rows from row " + from + " do not fit a tensor of "
                        + into.dim(0) + " rows");
            }
        }
    }

    /**
     * What {@link Entry#withLayerLogits} and {@link Entry#withLayerLogitsInto} ask for: the logits of each of
     * {@code layers} (0-based decoder layers, none twice; the model refuses one past its depth) at the entry's row
     * {@code row}, returned when {@code into} is null, else copied into rows {@code [from, from + layers.length)} of it.
     */
    public record LayerLogits(int[] layers, int row, Tensor into, int from) {
        public LayerLogits {
            Objects.requireNonNull(layers, "layers");
            if (layers.length == 0) {
                throw new IllegalArgumentException("layer logits need at least one layer");
            }
            for (int i = 0; i < layers.length; i++) {
                if (layers[i] < 0) {
                    throw new IllegalArgumentException("layer " + layers[i] + " is negative; decoder layers count from 0");
                }
                for (int j = 0; j < i; j++) {
                    if (layers[j] == layers[i]) {
                        throw new IllegalArgumentException("layer " + layers[i] + " is asked for twice");
                    }
                }
            }
            if (into != null && (from < 0 || from + layers.length > into.dim(0))) {
                throw new IllegalArgumentException("logits of " + layers.length + " layers from row " + from
                        + " do not fit a tensor of " + into.dim(0) + " rows");
            }
        }
    }

    private final List<Entry> entries;

    private Batch(List<Entry> entries) {
        if (entries.isEmpty()) {
            throw new IllegalArgumentException("a batch needs at least one entry");
        }
        for (int i = 0; i < entries.size(); i++) {
            for (int j = i + 1; j < entries.size(); j++) {
                if (entries.get(i).kv() == entries.get(j).kv()) {
                    throw new IllegalArgumentException("a sequence appears twice in one batch");
                }
            }
        }
        this.entries = List.copyOf(entries);
    }

    public static Batch of(Entry... entries) {
        return new Batch(Arrays.asList(entries));
    }

    public static Batch of(List<Entry> entries) {
        return new Batch(new ArrayList<>(entries));
    }

    public List<Entry> entries() {
        return entries;
    }

    public int totalRows() {
        int n = 0;
        for (Entry e : entries) {
            n += e.rows();
        }
        return n;
    }

    public int totalLogitRows() {
        int n = 0;
        for (Entry e : entries) {
            n += e.logitRows().length;
        }
        return n;
    }
}
