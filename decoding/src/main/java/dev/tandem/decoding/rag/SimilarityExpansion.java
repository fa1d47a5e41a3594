package dev.tandem.decoding.rag;

import dev.tandem.runtime.TandemException;

import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;

/**
 * {@link ExpansionPolicy#similarity(double)}: the {@code round(fraction × n)} chunks (half up) most similar to the
 * question expand. Similarity is the cosine of the encoder vectors, summed in double in index order; a zero vector has
 * similarity 0 to everything. Ties go to the earlier chunk.
 */
public record SimilarityExpansion(double fraction) implements ExpansionPolicy {
    public SimilarityExpansion {
        if (!(fraction >= 0 && fraction <= 1)) {
            throw new TandemException("the fraction of chunks to expand must be between 0 and 1, not " + fraction + " (--expand).");
        }
    }

    @Override
    public boolean[] expand(float[] question, List<float[]> vectors, List<int[]> chunks) {
        int n = chunks.size();
        if (vectors.size() != n) {
            throw new IllegalArgumentException(vectors.size() + " vectors for " + n + " chunks");
        }
        double[] similarity = new double[n];
        for (int i = 0; i < n; i++) {
            similarity[i] = cosine(question, vectors.get(i));
        }
        int count = (int) Math.round(fraction * n);
        boolean[] out = new boolean[n];
        IntStream.range(0, n).boxed()
                .sorted(Comparator.<Integer>comparingDouble(i -> -similarity[i]).thenComparingInt(i -> i))
                .limit(count)
                .forEach(i -> out[i] = true);
        return out;
    }

    /** cos(a, b) in double; 0 when either vector is zero. */
    static double cosine(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("vectors of widths " + a.length + " and " + b.length);
        }
        double dot = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
            aa += (double) a[i] * a[i];
            bb += (double) b[i] * b[i];
        }
        return aa == 0 || bb == 0 ? 0 : dot / (Math.sqrt(aa) * Math.sqrt(bb));
    }

    @Override
    public String toString() {
        return "similarity(" + fraction + ")";
    }
}
