package dev.tandem.decoding.rag;

import java.util.Arrays;
import java.util.List;

/** {@link ExpansionPolicy#all()} and {@link ExpansionPolicy#none()}: the same answer for every chunk, no vectors read. */
enum FixedExpansion implements ExpansionPolicy {
    NONE(false), ALL(true);

    private final boolean expand;

    FixedExpansion(boolean expand) {
        this.expand = expand;
    }

    @Override
    public boolean[] expand(float[] question, List<float[]> vectors, List<int[]> chunks) {
        boolean[] out = new boolean[chunks.size()];
        Arrays.fill(out, expand);
        return out;
    }

    @Override
    public boolean readsVectors() {
        return false;
    }

    @Override
    public String toString() {
        return expand ? "all" : "none";
    }
}
