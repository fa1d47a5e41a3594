package dev.tandem.decoding.speculative;

import java.util.Arrays;

/**
 * The outcome of verifying a {@link TokenTree}.
 *
 * @param path the accepted node indices, root → leaf (each a child of the one before; the first a child
 *     of the root); empty when nothing was accepted
 * @param next the target's token after the accepted path (a correction or a bonus token)
 */
public record TreeVerdict(int[] path, int next) {

    public TreeVerdict {
        path = path.clone();
        if (next < 0) {
            throw new IllegalArgumentException("next must be a token id >= 0, but was " + next + ".");
        }
    }

    @Override
    public int[] path() {
        return path.clone();
    }

    /** Number of accepted nodes. */
    public int accepted() {
        return path.length;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TreeVerdict v && next == v.next && Arrays.equals(path, v.path);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(path) + next;
    }

    @Override
    public String toString() {
        return "TreeVerdict[path=" + Arrays.toString(path) + ", next=" + next + "]";
    }
}
