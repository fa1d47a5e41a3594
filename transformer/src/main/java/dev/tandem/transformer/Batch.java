package dev.tandem.transformer;

import dev.tandem.runtime.kv.KvSequence;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The unit of work of one forward pass: for each sequence, its KV-cache handle, the new rows (token
 * ids) with their positions, the attention shape of those rows, and the rows whose logits are wanted.
 * Decode is one row per sequence; prefill is many rows of one sequence; both are the same call.
 */
public final class Batch {

    /**
     * One sequence's part of a batch.
     *
     * @param kv         the sequence's cache; the new rows are appended to it
     * @param tokens     the new rows' token ids
     * @param positions  the new rows' positions (for a causal chain: kv.length() .. kv.length()+n−1)
     * @param shape      what the new rows attend to
     * @param logitRows  indices into {@code tokens} whose logits the caller wants, in output order
     */
    public record Entry(KvSequence kv, int[] tokens, int[] positions, AttentionShape shape, int[] logitRows) {
        public Entry {
            Objects.requireNonNull(kv, "kv");
            Objects.requireNonNull(shape, "shape");
            if (tokens.length == 0) {
                throw new IllegalArgumentException("a batch entry needs at least one new row");
            }
            if (positions.length != tokens.length) {
                throw new IllegalArgumentException(tokens.length + " tokens but " + positions.length + " positions");
            }
            for (int r : logitRows) {
                if (r < 0 || r >= tokens.length) {
                    throw new IllegalArgumentException("logit row " + r + " is outside the entry's " + tokens.length + " rows");
                }
            }
        }

        /** New tokens continuing {@code kv} causally, with logits at the last row only. */
        public static Entry continuation(KvSequence kv, int... tokens) {
            int[] positions = new int[tokens.length];
            for (int i = 0; i < tokens.length; i++) {
                positions[i] = kv.length() + i;
            }
            return new Entry(kv, tokens.clone(), positions, AttentionShape.CAUSAL, new int[] {tokens.length - 1});
        }

        /** Like {@link #continuation} but with logits at every row. */
        public static Entry continuationAllLogits(KvSequence kv, int... tokens) {
            Entry e = continuation(kv, tokens);
            int[] all = new int[tokens.length];
            Arrays.setAll(all, i -> i);
            return new Entry(kv, e.tokens, e.positions, e.shape, all);
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
            n += e.tokens().length;
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
