package dev.tandem.decoding.rag;

import java.util.List;

/**
 * REFRAG's choice of the chunks that go back to the decoder as their tokens (expanded) rather than as one projected
 * vector (compressed). The paper trains this choice with reinforcement learning; Tandem ships heuristics and lets a
 * caller plug in any other.
 */
@FunctionalInterface
public interface ExpansionPolicy {
    /** The fraction {@link #similarity()} expands: Tandem's choice, see docs/decisions.md. */
    double DEFAULT_FRACTION = 0.25;

    /**
     * Which chunks to expand: {@code true} at index i expands chunk i.
     *
     * @param question the question's encoder vector; null when {@link #readsVectors()} is false
     * @param vectors  each chunk's encoder vector, in order; null when {@link #readsVectors()} is false
     * @param chunks   each chunk's token ids, in order (passage after passage, k tokens each but a passage's last)
     * @return one flag per chunk
     */
    boolean[] expand(float[] question, List<float[]> vectors, List<int[]> chunks);

    /** Whether {@link #expand} reads the vectors; when not, they are computed only for the chunks it compresses. */
    default boolean readsVectors() {
        return true;
    }

    /**
     * Expands the {@code round(fraction × chunks)} chunks whose vectors are most similar (cosine, in double) to the
     * question's, ties to the earlier chunk.
     *
     * @throws dev.tandem.runtime.TandemException if {@code fraction} is not in [0, 1]
     */
    static ExpansionPolicy similarity(double fraction) {
        return new SimilarityExpansion(fraction);
    }

    /** {@link #similarity(double)} of {@link #DEFAULT_FRACTION}. */
    static ExpansionPolicy similarity() {
        return similarity(DEFAULT_FRACTION);
    }

    /** Compresses every chunk. */
    static ExpansionPolicy none() {
        return FixedExpansion.NONE;
    }

    /** Expands every chunk: the decoder reads the passages' tokens, and the encoder and projection are not used. */
    static ExpansionPolicy all() {
        return FixedExpansion.ALL;
    }
}
