package dev.tandem.runtime;

import java.util.Objects;

/**
 * What each query row of an attention call may see, as a descriptor rather than a dense T×T mask.
 * Row {@code r} reads the sequence whose block table is {@code blockTables[r]} (rows of one sequence
 * share the array) and attends to
 * <ul>
 *   <li>every logical position in {@code [0, prefix[r])}, then</li>
 *   <li>the first {@code extraCount[r]} entries of {@code extra[r]}: further logical positions, strictly
 *       increasing and all {@code >= prefix[r]} (a tree row's ancestors and itself, a segment so far).
 *       Rows may share one {@code extra} array and see different lengths of it (the rows of one
 *       segment do).</li>
 * </ul>
 * Keys are always visited in increasing logical order, so a row's result depends only on which
 * positions it sees, not on the shape that chose them: a tree node equals its root-to-node chain,
 * a segment equals the segment run alone. Causal prefill, decode and chain verification are
 * {@code prefix = position + 1} and no extra; bidirectional rows have {@code prefix} = the whole sequence.
 *
 * @param blockTables per row, the physical KV block of each logical block of its sequence
 * @param prefix      per row, how many leading logical positions (from 0) the row attends to
 * @param extra       per row, null or a sorted array of further visible logical positions; the array itself may be null
 * @param extraCount  per row, how many entries of {@code extra[r]} the row sees (null: all of them)
 */
public record AttentionRows(int[][] blockTables, int[] prefix, int[][] extra, int[] extraCount) {
    public AttentionRows {
        Objects.requireNonNull(blockTables);
        Objects.requireNonNull(prefix);
        int n = prefix.length;
        if (blockTables.length != n) {
            throw new IllegalArgumentException("blockTables and prefix differ in length");
        }
        if (extra != null && extra.length != n) {
            throw new IllegalArgumentException("extra has " + extra.length + " rows, prefix " + n);
        }
        if (extraCount != null && (extra == null || extraCount.length != n)) {
            throw new IllegalArgumentException("extraCount needs an extra array of the same number of rows");
        }
        for (int r = 0; r < n; r++) {
            if (prefix[r] < 0) {
                throw new IllegalArgumentException("row " + r + " has a negative prefix " + prefix[r]);
            }
            int[] x = extra == null ? null : extra[r];
            int count = x == null ? 0 : extraCount == null ? x.length : extraCount[r];
            if (count < 0 || count > (x == null ? 0 : x.length)) {
                throw new IllegalArgumentException("row " + r + " sees " + count + " extra positions of "
                        + (x == null ? 0 : x.length));
            }
            int last = prefix[r] - 1;
            for (int i = 0; i < count; i++) {
                if (x[i] <= last) {
                    throw new IllegalArgumentException("row " + r + ": extra positions must be increasing and past the prefix "
                            + prefix[r] + ", got " + x[i] + " after " + last);
                }
                last = x[i];
            }
        }
    }

    /** Rows that each see the positions {@code [0, visible[r])}: the causal shape. */
    public AttentionRows(int[][] blockTables, int[] visible) {
        this(blockTables, visible, null, null);
    }

    public int rows() {
        return prefix.length;
    }

    /** Number of positions row {@code r} attends to. */
    public int visibleCount(int r) {
        return prefix[r] + extraCount(r);
    }

    /** Number of extra positions row {@code r} sees. */
    public int extraCount(int r) {
        if (extra == null || extra[r] == null) {
            return 0;
        }
        return extraCount == null ? extra[r].length : extraCount[r];
    }

    /** The {@code j}-th position row {@code r} attends to, in increasing order, j in [0, visibleCount(r)). */
    public int position(int r, int j) {
        int p = prefix[r];
        return j < p ? j : extra[r][j - p];
    }

    /** One past the largest logical position row {@code r} reads (0 when it reads none). */
    public int extent(int r) {
        int c = extraCount(r);
        return c > 0 ? extra[r][c - 1] + 1 : prefix[r];
    }
}
