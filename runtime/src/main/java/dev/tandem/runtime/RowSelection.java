package dev.tandem.runtime;

import java.util.Arrays;

/**
 * A choice among rows of logits by a score of each row's softmax, made where the logits are
 * ({@link Backend#selectRows}): which masked positions a diffusion step commits, each with its most likely token.
 *
 * @param rows   the chosen rows, in the order chosen (highest score first, the lower row first among equal scores)
 * @param tokens each chosen row's most likely token (its argmax, lowest id on ties)
 */
public record RowSelection(int[] rows, int[] tokens) {

    /** What a row is scored by, from its {@link LogitSummary}. */
    public enum Score {
        /** The top softmax probability (a confidence). */
        TOP_PROBABILITY,
        /** Minus the softmax entropy: the most peaked row first. */
        NEGATIVE_ENTROPY,
        /** The top probability minus the second's. */
        MARGIN;

        /** This score of {@code s} (a valid summary of at least two top ids, or one for a row of one finite value). */
        public double of(LogitSummary s) {
            return switch (this) {
                case TOP_PROBABILITY -> s.maxProbability();
                case NEGATIVE_ENTROPY -> -s.entropy();
                case MARGIN -> s.margin();
            };
        }
    }

    public RowSelection {
        if (rows.length != tokens.length) {
            throw new IllegalArgumentException("a selection needs a token per row, got " + rows.length + " rows and " + tokens.length);
        }
        rows = rows.clone();
        tokens = tokens.clone();
    }

    /**
     * The candidates to choose, as indexes into {@code scores} in the order chosen (highest score first, the lower
     * index first among equal scores): the {@code count} best; or, with {@code threshold} above 0, every candidate
     * whose score exceeds it, and the single best when none does.
     */
    public static int[] choose(double[] scores, int count, double threshold) {
        Integer[] order = new Integer[scores.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> {
            int c = Double.compare(scores[b], scores[a]);
            return c != 0 ? c : Integer.compare(a, b);
        });
        int n;
        if (threshold > 0) {
            n = 0;
            while (n < order.length && scores[order[n]] > threshold) {
                n++;
            }
            n = Math.max(n, Math.min(1, order.length));
        } else {
            n = Math.min(count, order.length);
        }
        int[] chosen = new int[n];
        for (int i = 0; i < n; i++) {
            chosen[i] = order[i];
        }
        return chosen;
    }

    /**
     * The host reference of {@link Backend#selectRows}: each row's summary, its score, then {@link #choose}.
     *
     * @throws IllegalArgumentException for a row with no softmax (a NaN or +Infinity, or only -Infinity)
     */
    public static RowSelection of(LogitSummary[] summaries, Score score, int count, double threshold) {
        double[] scores = new double[summaries.length];
        for (int r = 0; r < summaries.length; r++) {
            LogitSummary s = summaries[r];
            if (!s.valid() || s.argmax() < 0) {
                throw new IllegalArgumentException("row " + r + " of the logits has no softmax (it holds NaN or +Infinity, or only -Infinity).");
            }
            scores[r] = score.of(s);
        }
        int[] chosen = choose(scores, count, threshold);
        int[] tokens = new int[chosen.length];
        for (int i = 0; i < chosen.length; i++) {
            tokens[i] = summaries[chosen[i]].argmax();
        }
        return new RowSelection(chosen, tokens);
    }

    /** Checks a selection's arguments: a count of at least 1 unless a threshold in (0, 1] is given. */
    public static void requireArguments(int count, double threshold) {
        if (threshold > 0 ? !(threshold <= 1) : count < 1) {
            throw new IllegalArgumentException(threshold > 0 ? "a selection threshold must be in (0, 1], but was " + threshold + "."
                    : "a selection needs a count of at least 1 (or a threshold), but got " + count + ".");
        }
    }
}
