package dev.tandem.transformer;

import java.util.Arrays;

/**
 * Which keys the new rows of one sequence in a {@link Batch} attend to, besides themselves. "The
 * cached prefix" is what the sequence held before the call; the new rows are appended after it in
 * row order. Whatever the shape, each row reads the keys it sees in increasing cache order, so its
 * output equals running exactly those rows as a plain causal chain.
 * A model whose config says {@code "is_causal": false} ignores the shape and lets every row see the
 * whole sequence (cached prefix and all new rows).
 */
public sealed interface AttentionShape {

    /** Row i sees the cached prefix and new rows 0..i (prefill, decode, chain verification). */
    AttentionShape CAUSAL = new Causal();

    /** Every new row sees the whole cached prefix and all new rows. */
    AttentionShape BIDIRECTIONAL = new Bidirectional();

    /**
     * Checks the shape against an entry of {@code rows} new rows.
     *
     * @throws IllegalArgumentException with a sentence saying what is wrong
     */
    void validate(int rows);

    /** Row i sees the cached prefix and new rows 0..i. */
    record Causal() implements AttentionShape {
        @Override
        public void validate(int rows) {
        }
    }

    /**
     * A token tree: {@code parents[i]} is the index of row i's parent among the entry's new rows, or −1
     * for a child of the cached prefix. Row i sees the cached prefix, its ancestors and itself. Parents
     * precede their children. Positions are usually prefix length + depth.
     */
    record Tree(int[] parents) implements AttentionShape {
        public Tree {
            parents = parents.clone();
        }

        @Override
        public void validate(int rows) {
            if (parents.length != rows) {
                throw new IllegalArgumentException("tree has " + parents.length + " parents for " + rows + " rows");
            }
            for (int i = 0; i < rows; i++) {
                if (parents[i] < -1 || parents[i] >= i) {
                    throw new IllegalArgumentException("tree row " + i + " has parent " + parents[i]
                            + "; a parent must be an earlier row or -1 (the cached prefix)");
                }
            }
        }

        @Override
        public int[] parents() {
            return parents.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Tree t && Arrays.equals(parents, t.parents);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(parents);
        }

        @Override
        public String toString() {
            return "Tree" + Arrays.toString(parents);
        }
    }

    /** Every new row sees the whole cached prefix and every new row (before and after it). */
    record Bidirectional() implements AttentionShape {
        @Override
        public void validate(int rows) {
        }
    }

    /**
     * Causal rows over a chosen part of the cached prefix: each new row sees the cached positions listed in
     * {@code cached} (strictly increasing, each below the cached length), then the new rows up to itself. This is
     * how the question and answer of a sequence with attached passages ({@code KvSequence.attach}) read the
     * passages but not the padding between them: block-sparse attention over cached passages.
     */
    record SparsePrefix(int[] cached) implements AttentionShape {
        public SparsePrefix {
            cached = cached.clone();
            for (int i = 0; i < cached.length; i++) {
                if (cached[i] < 0 || (i > 0 && cached[i] <= cached[i - 1])) {
                    throw new IllegalArgumentException("the visible cached positions must be non-negative and increasing, got "
                            + cached[i] + (i > 0 ? " after " + cached[i - 1] : "") + " at index " + i);
                }
            }
        }

        @Override
        public void validate(int rows) {
        }

        /** One past the largest cached position the rows see (0 when none). */
        public int extent() {
            return cached.length == 0 ? 0 : cached[cached.length - 1] + 1;
        }

        @Override
        public int[] cached() {
            return cached.clone();
        }

        /** Number of cached positions the rows see. */
        public int count() {
            return cached.length;
        }

        /** The {@code i}-th visible cached position. */
        public int at(int i) {
            return cached[i];
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof SparsePrefix t && Arrays.equals(cached, t.cached);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(cached);
        }

        @Override
        public String toString() {
            return "SparsePrefix(" + cached.length + " cached positions)";
        }
    }

    /**
     * Independent segments of the new rows: segment s is rows {@code [starts[s], starts[s+1])} (the last
     * runs to the end); each row sees the earlier rows of its own segment and itself, and the cached
     * prefix only when {@code seePrefix}. Positions may restart in each segment.
     */
    record Segments(int[] starts, boolean seePrefix) implements AttentionShape {
        public Segments {
            starts = starts.clone();
        }

        @Override
        public void validate(int rows) {
            if (starts.length == 0 || starts[0] != 0) {
                throw new IllegalArgumentException("segments must start with a segment at row 0, got "
                        + Arrays.toString(starts));
            }
            for (int s = 1; s < starts.length; s++) {
                if (starts[s] <= starts[s - 1] || starts[s] >= rows) {
                    throw new IllegalArgumentException("segment starts must increase and lie inside the entry's "
                            + rows + " rows, got " + Arrays.toString(starts));
                }
            }
        }

        @Override
        public int[] starts() {
            return starts.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Segments t && seePrefix == t.seePrefix && Arrays.equals(starts, t.starts);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(starts) + Boolean.hashCode(seePrefix);
        }

        @Override
        public String toString() {
            return "Segments" + Arrays.toString(starts) + (seePrefix ? " seeing the prefix" : "");
        }
    }
}
