package dev.tandem.decoding.diffusion;

import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.RowSelection;
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
            case ENTROPY, CCD -> -s.entropy();
            case MARGIN -> s.margin();
            case RANDOM -> CounterRng.uniform(seed, stream, position, RngPurpose.REMASK, step);
        };
    }

    /** CCD's budget cap: V = u + {@value} · u positions a step may commit. */
    static final int CCD_EXPAND = 4;

    /**
     * {@link UnmaskRule#CCD}'s choice, updating each candidate's history: with V = u + {@link #CCD_EXPAND} · u, a
     * candidate's streak grows by one when it is among the V highest scores and its token equals its token at the
     * previous pass (when it was among them too), and starts again (1 in the top V, else 0) otherwise. The step
     * commits the candidates of the top V whose streak reached {@code window}, highest score first, when there are at
     * least u of them; else the u highest (ties to the lower position, as {@link #choose}).
     *
     * @param lastToken per canvas position, its token at the previous pass of this block (updated)
     * @param streak    per canvas position, its current streak (updated; 0 for a position new to the block)
     */
    static int[] chooseConsistent(double[] scores, int[] positions, int[] tokens, int u, int window, int[] lastToken, int[] streak) {
        int n = scores.length;
        int[] order = choose(scores, positions, n, 0);
        int v = Math.min(n, u + CCD_EXPAND * u);
        boolean[] top = new boolean[n];
        for (int i = 0; i < v; i++) {
            top[order[i]] = true;
        }
        for (int i = 0; i < n; i++) {
            int p = positions[i];
            streak[p] = !top[i] ? 0 : streak[p] > 0 && lastToken[p] == tokens[i] ? streak[p] + 1 : 1;
            lastToken[p] = tokens[i];
        }
        int[] consistent = new int[v];
        int k = 0;
        for (int i = 0; i < v; i++) {
            if (streak[positions[order[i]]] >= window) {
                consistent[k++] = order[i];
            }
        }
        return k >= u && k > 0 ? Arrays.copyOf(consistent, k) : Arrays.copyOf(order, Math.min(u, n));
    }

    /**
     * The key of step {@code step}'s Gumbel noise: a 64-bit draw of the request's generator (its seed and stream, the
     * step as the position, purpose GUMBEL, the last index), so that each step's noise is new and no other draw
     * shares it.
     */
    static long gumbelKey(long seed, long stream, int step) {
        return CounterRng.bits64(seed, stream, step, RngPurpose.GUMBEL, (1 << 24) - 1);
    }

    /**
     * LLaDA's Gumbel-noised argmax at one position: the token t maximising l_t − T · ln(−ln u_t) (argmax of
     * e^l / (−ln u)^T, computed in logs), u_t = the uniform draw of ({@code key}, {@code stream}, {@code position},
     * GUMBEL, t); −Infinity logits never win; ties to the lowest id. As T → 0 it is the argmax.
     */
    static int gumbelArgmax(float[] logits, float temperature, long key, long stream, int position) {
        int best = -1;
        double bestValue = Double.NEGATIVE_INFINITY;
        for (int t = 0; t < logits.length; t++) {
            if (logits[t] == Float.NEGATIVE_INFINITY) {
                continue;
            }
            double u = CounterRng.uniform(key, stream, position, RngPurpose.GUMBEL, t);
            double v = logits[t] - temperature * Math.log(-Math.log(u));
            if (best < 0 || v > bestValue) {
                best = t;
                bestValue = v;
            }
        }
        return best;
    }

    /**
     * The candidates a step commits, as indexes into {@code scores} in the order committed (highest score first, the
     * lower position first among equal scores): the {@code count} best; or, with a threshold τ > 0, every candidate
     * whose score exceeds τ, and the single best when none does.
     */
    static int[] choose(double[] scores, int[] positions, int count, double threshold) {
        for (int i = 1; i < positions.length; i++) {
            if (positions[i] <= positions[i - 1]) {
                throw new IllegalArgumentException("candidate positions must increase, but " + positions[i] + " follows " + positions[i - 1]);
            }
        }
        return RowSelection.choose(scores, count, threshold); // the lower index is the lower position
    }
}
