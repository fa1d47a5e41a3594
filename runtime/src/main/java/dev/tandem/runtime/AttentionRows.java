package dev.tandem.runtime;

import java.util.Objects;

/**
 * What each query row of an attention call may see, as a descriptor rather than a dense mask:
 * row {@code r} attends to the keys at logical positions {@code [0, visible[r])} of the sequence
 * whose block table is {@code blockTables[r]} (rows of one sequence share the same array).
 * Causal prefill, decode and chain verification are all this shape; tree, bidirectional and
 * segment masks extend it.
 *
 * @param blockTables per row, the physical KV block of each logical block of its sequence
 * @param visible     per row, how many cached positions (from 0) the row attends to
 */
public record AttentionRows(int[][] blockTables, int[] visible) {
    public AttentionRows {
        Objects.requireNonNull(blockTables);
        Objects.requireNonNull(visible);
        if (blockTables.length != visible.length) {
            throw new IllegalArgumentException("blockTables and visible differ in length");
        }
    }

    public int rows() {
        return visible.length;
    }
}
