package dev.tandem.decoding.diffusion;

import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.rng.CounterRng;
import dev.tandem.runtime.rng.RngPurpose;

import java.util.Arrays;

/** The unmasking rules' arithmetic, as pure functions of the scores (unit-tested on constructed summaries). */
final class Unmasking {

    private Unmasking() {}

    /**
     * LLaDA's {@code get_num_transfer_tokens}: {@code masked} positions spread over {@code steps} steps, each step
     * {@code masked / steps} and the first {@code masked % steps} steps one more.
     */
    static int[] transferCounts(int masked, int steps) {
        int[] counts = new int[steps];
        for (int i = 0; i < steps; i++) {
            counts[i] = masked / steps + (i < masked % steps ? 1 : 0);
        }
        return counts;
    }

    /**
     * The score of a masked position under {@code rule} (higher commits first): its confidence (top probability),
     * minus its entropy, its top-2 margin, or the uniform draw for ({@code seed}, {@code stream}, its position,
     * REMASK, {@code step}).
     */
    static double score(UnmaskRule rule, LogitSummary s, long seed, long stream, int position, int step) {
        return switch (rule) {
            case LOW_CONFIDENCE, THRESHOLD -> s.maxProbability();
            case ENTROPY -> -s.entropy();
            case MARGIN -> s.margin();
            case RANDOM -> CounterRng.uniform(seed, stream, position, RngPurpose.REMASK, step);
        };
    }

    /**
     * The candidates a step commits, as indexes into {@code scores} in the order committed (highest score first, the
     * lower position first among equal scores): the {@code count} best; or, with a threshold τ > 0, every candidate
     * whose score exceeds τ, and the single best when none does.
     */
    static int[] choose(double[] scores, int[] positions, int count, double threshold) {
        Integer[] order = new Integer[scores.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> {
            int c = Double.compare(scores[b], scores[a]);
            return c != 0 ? c : Integer.compare(positions[a], positions[b]);
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
}
