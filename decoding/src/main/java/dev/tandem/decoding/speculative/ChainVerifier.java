package dev.tandem.decoding.speculative;

import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.runtime.rng.CounterRng;
import dev.tandem.runtime.rng.RngPurpose;

import java.util.function.IntUnaryOperator;

/**
 * Verification of a drafted chain of tokens against the target model ({@code METHODS.md}, "Speculative
 * family"). Pure functions of their arguments: every random draw comes from {@link CounterRng} keyed by
 * (seed, stream, absolute position, purpose), so a verdict never depends on call order or batch slot.
 */
public final class ChainVerifier {

    private ChainVerifier() {}

    /** How a sampled chain is judged against the target's rows: {@link #sample}, or {@link #sampleNudged} at an η. */
    @FunctionalInterface
    interface SampledRule {
        /** Exact speculative sampling, {@link #sample}. */
        SampledRule EXACT = ChainVerifier::sample;

        Verdict verify(int[] draft, double[][] p, double[][] q, long seed, long stream, long position);

        /** {@link #sampleNudged} at {@code eta} (checked here). */
        static SampledRule nudged(double eta) {
            requireEta(eta);
            return (draft, p, q, seed, stream, position) -> sampleNudged(draft, p, q, eta, seed, stream, position);
        }
    }

    /**
     * Greedy verification. {@code target[i]} (i = 0..n, n = draft.length) holds the raw target logits of
     * the row that predicts {@code draft[i]}; row n predicts the token after the last draft token. Draft
     * tokens are accepted while {@link Sampler#argmax}(target[i]) == draft[i]; next = argmax(target[accepted]).
     */
    public static Verdict greedy(int[] draft, float[][] target) {
        requireRows("target", target.length, draft.length + 1, draft.length);
        return greedyFromArgmax(draft, i -> Sampler.argmax(target[i]));
    }

    /**
     * {@link #greedy} from each row's greedy token: {@code best.applyAsInt(i)} is the argmax of row i (asked
     * only for the rows the verdict reads, in increasing order), e.g. the ids a backend's argmax sent back.
     */
    public static Verdict greedyFromArgmax(int[] draft, IntUnaryOperator best) {
        Verdict v = greedyOpenEndedFromArgmax(draft, best);
        return v != null ? v : new Verdict(draft.length, best.applyAsInt(draft.length));
    }

    /**
     * {@link #greedy} without the bonus row: {@code target} holds one row per draft token (extra rows are
     * ignored). Returns the verdict at the first rejection, or null when every draft token was accepted and
     * the chain goes on (PEARL's post-verify: more draft tokens follow, to be checked by the next pass).
     */
    static Verdict greedyOpenEnded(int[] draft, float[][] target) {
        return greedyOpenEndedFromArgmax(draft, i -> Sampler.argmax(target[i]));
    }

    /** {@link #greedyOpenEnded(int[], float[][])} from each row's greedy token, as {@link #greedyFromArgmax}. */
    static Verdict greedyOpenEndedFromArgmax(int[] draft, IntUnaryOperator argmax) {
        for (int i = 0; i < draft.length; i++) {
            int best = argmax.applyAsInt(i);
            if (best != draft[i]) {
                return new Verdict(i, best);
            }
        }
        return null;
    }

    /**
     * Exact speculative sampling (Leviathan, Kalman, Matias 2023; Chen et al. 2023): the emitted tokens are
     * distributed exactly as if drawn one by one from the target.
     *
     * <p>{@code p[i]} (n + 1 rows, n = draft.length) is the target's processed distribution at row i (as
     * {@link Sampler#distribution} gives it); {@code q[i]} (n rows) is the distribution {@code draft[i]} was
     * drawn from, or {@code q == null} for a deterministic drafter (q[i] one-hot at draft[i]).
     * {@code position} is the absolute position {@code draft[0]} will occupy.
     *
     * <p>draft[i] = x is accepted iff p[i][x] &gt; 0 and u ≤ p[i][x] / q[i][x], with u =
     * {@link CounterRng#uniform}(seed, stream, position + i, {@link RngPurpose#ACCEPT}, 0). At the first
     * rejection, next is drawn by inverse CDF (ids in increasing order) from norm(max(p[i] − q[i], 0)) with
     * u = uniform(seed, stream, position + i, {@link RngPurpose#RESIDUAL}, 0); if that residual is all zero
     * (possible only through rounding, when p[i] ≈ q[i]) it is drawn from p[i] instead. If all n are
     * accepted, next is drawn from p[n] as {@link Sampler#sample} draws the token at position + n (purpose
     * SAMPLE, index 0, first id whose running sum exceeds u · total). Sampler sums the unnormalised
     * weights exp(l − max) while this sums p = weight / total, so the two can differ only when u · total
     * falls within rounding (an ulp or so) of a cumulative boundary.
     *
     * @throws IllegalArgumentException on mismatched shapes, a draft id outside the vocabulary, or
     *     q[i][draft[i]] == 0 (the drafter could not have drawn it)
     */
    public static Verdict sample(int[] draft, double[][] p, double[][] q, long seed, long stream, long position) {
        int n = draft.length;
        requireRows("p", p.length, n + 1, n);
        Verdict v = sampleOpenEnded(draft, p, q, seed, stream, position);
        if (v != null) {
            return v;
        }
        double u = CounterRng.uniform(seed, stream, position + n, RngPurpose.SAMPLE, 0);
        return new Verdict(n, inverseCdf(p[n], u));
    }

    /**
     * {@link #sample} without the bonus draw: {@code p} needs one row per draft token (extra rows are
     * ignored). Returns the verdict at the first rejection (the same draws as {@link #sample}), or null when
     * every draft token was accepted and the chain goes on (PEARL's post-verify). Exactness is unchanged:
     * each accepted token passed the same ratio test, and the token after them is left to a later pass.
     */
    static Verdict sampleOpenEnded(int[] draft, double[][] p, double[][] q, long seed, long stream, long position) {
        int n = draft.length;
        if (p.length < n) {
            requireRows("p", p.length, n, n);
        }
        requireChain(draft, p, q);
        for (int i = 0; i < n; i++) {
            int x = draft[i];
            double qx = q == null ? 1.0 : q[i][x];
            double u = CounterRng.uniform(seed, stream, position + i, RngPurpose.ACCEPT, 0);
            if (accepts(u, p[i][x], qx)) {
                continue;
            }
            double r = CounterRng.uniform(seed, stream, position + i, RngPurpose.RESIDUAL, 0);
            double[] residual = q != null ? residual(p[i], q[i]) : residualOneHot(p[i], x);
            return new Verdict(i, drawOrFallBack(residual, p[i], r));
        }
        return null;
    }

    /**
     * RAPID's verification (Chen et al. 2025, "Long-Context Inference with Retrieval-Augmented Speculative
     * Decoding"): {@link #sample} against the target's distribution nudged toward the drafter's,
     * <pre>
     *   p̂ = softmax(log p − η·m·(p − q)),   m_t = [q_t ≥ 0.1·max q],
     * </pre>
     * one gradient step of η on the target's logits toward q (the gradient of KL(q ‖ p) in the logits is p − q),
     * only on the tokens the drafter finds plausible. draft[i] = x is accepted iff p̂[i][x] &gt; 0 and u ≤
     * p̂[i][x] / q[i][x] (u keyed ACCEPT); at the first rejection next is drawn from norm(max(p − q, p − p̂, 0))
     * (RESIDUAL; p[i] if that is all zero), and after a fully accepted chain from p[n] (SAMPLE), with
     * {@link #sample}'s keys and inverse CDF. A row then emits x with probability
     * <pre>
     *   P(x) = min(q, p̂)(x) + (1 − Σ min(q, p̂)) · norm(max(p − q, p − p̂, 0))(x),
     * </pre>
     * which is p(x) wherever min(q, p̂)(x) ≤ p(x) holds for every token, and otherwise lifts the tokens both the
     * drafter and the nudged target rate above p. At η = 0, p̂ is p itself (not renormalised), so every verdict is
     * {@link #sample}'s. p and q are the processed distributions (temperature, top-k, top-p, min-p applied): a token
     * they remove stays removed. {@code q == null} is a deterministic drafter (q[i] one-hot at draft[i]).
     *
     * @throws IllegalArgumentException as {@link #sample}, or if η is negative, infinite or NaN
     */
    public static Verdict sampleNudged(int[] draft, double[][] p, double[][] q, double eta, long seed, long stream,
                                       long position) {
        requireEta(eta);
        int n = draft.length;
        requireRows("p", p.length, n + 1, n);
        requireChain(draft, p, q);
        for (int i = 0; i < n; i++) {
            int x = draft[i];
            double[] qi = q != null ? q[i] : oneHot(x, p[i].length);
            double[] nudged = eta == 0 ? p[i] : nudged(p[i], qi, eta);
            double u = CounterRng.uniform(seed, stream, position + i, RngPurpose.ACCEPT, 0);
            if (accepts(u, nudged[x], qi[x])) {
                continue;
            }
            double r = CounterRng.uniform(seed, stream, position + i, RngPurpose.RESIDUAL, 0);
            return new Verdict(i, drawOrFallBack(nudgedResidual(p[i], qi, nudged), p[i], r));
        }
        double u = CounterRng.uniform(seed, stream, position + n, RngPurpose.SAMPLE, 0);
        return new Verdict(n, inverseCdf(p[n], u));
    }

    /** Share of the drafter's top probability from which a token is nudged ({@link #sampleNudged}'s mask m). */
    static final double NUDGE_MASK = 0.1;

    /** @throws IllegalArgumentException unless η is a finite number ≥ 0 */
    static double requireEta(double eta) {
        if (!(eta >= 0) || Double.isInfinite(eta)) {
            throw new IllegalArgumentException("--eta (η) must be a finite number of at least 0, but was " + eta + ".");
        }
        return eta;
    }

    /** p̂ = softmax(log p − η·m·(p − q)), m_t = [q_t ≥ {@value #NUDGE_MASK}·max q], in log space (any finite η). */
    static double[] nudged(double[] p, double[] q, double eta) {
        double maxQ = 0;
        for (double v : q) {
            maxQ = Math.max(maxQ, v);
        }
        double floor = NUDGE_MASK * maxQ;
        double[] z = new double[p.length];
        double max = Double.NEGATIVE_INFINITY;
        for (int t = 0; t < z.length; t++) {
            z[t] = p[t] > 0 ? Math.log(p[t]) - (q[t] >= floor ? eta * (p[t] - q[t]) : 0) : Double.NEGATIVE_INFINITY;
            max = Math.max(max, z[t]);
        }
        double total = 0;
        for (int t = 0; t < z.length; t++) {
            z[t] = p[t] > 0 ? Math.exp(z[t] - max) : 0;
            total += z[t];
        }
        for (int t = 0; t < z.length; t++) {
            z[t] /= total;
        }
        return z;
    }

    /** max(p − q, p − p̂, 0), unnormalised; at p̂ = p it is {@link #residual}'s max(p − q, 0) bit for bit. */
    static double[] nudgedResidual(double[] p, double[] q, double[] nudged) {
        double[] r = new double[p.length];
        for (int t = 0; t < r.length; t++) {
            double d = Math.max(p[t] - q[t], p[t] - nudged[t]);
            r[t] = d > 0 ? d : 0;
        }
        return r;
    }

    private static double[] oneHot(int x, int vocab) {
        double[] q = new double[vocab];
        q[x] = 1;
        return q;
    }

    /** Checks a chain's shapes (p's rows have one length, the vocabulary), its ids and that q could have drawn them. */
    private static void requireChain(int[] draft, double[][] p, double[][] q) {
        int n = draft.length;
        if (q != null) {
            requireRows("q", q.length, n, n);
        }
        int vocab = p.length == 0 ? 0 : p[0].length;
        for (int i = 0; i < p.length; i++) {
            requireLength("p[" + i + "]", p[i], vocab);
        }
        for (int i = 0; i < n; i++) {
            int x = draft[i];
            if (x < 0 || x >= vocab) {
                throw new IllegalArgumentException(
                        "draft[" + i + "] = " + x + " is outside the vocabulary [0, " + vocab + ").");
            }
            if (q != null) {
                requireLength("q[" + i + "]", q[i], vocab);
                if (!(q[i][x] > 0)) {
                    throw new IllegalArgumentException("q[" + i + "][" + x + "] = " + q[i][x]
                            + ", but draft[" + i + "] = " + x + " was drawn from q[" + i + "], so it must be > 0.");
                }
            }
        }
    }

    /** The acceptance test u ≤ p/q of speculative sampling (never accepting a token of probability 0). */
    static boolean accepts(double u, double px, double qx) {
        return px > 0 && (px >= qx || u <= px / qx);
    }

    /** max(p − q, 0), unnormalised (the inverse-CDF draw normalises implicitly). */
    static double[] residual(double[] p, double[] q) {
        double[] r = new double[p.length];
        for (int t = 0; t < r.length; t++) {
            double d = p[t] - q[t];
            r[t] = d > 0 ? d : 0;
        }
        return r;
    }

    /** max(p − onehot(x), 0): p with token x removed. */
    private static double[] residualOneHot(double[] p, int x) {
        double[] r = p.clone();
        r[x] = 0;
        for (int t = 0; t < r.length; t++) {
            if (!(r[t] > 0)) {
                r[t] = 0;
            }
        }
        return r;
    }

    /** Draws from {@code weights}, or from {@code fallback} when the weights are all zero. */
    static int drawOrFallBack(double[] weights, double[] fallback, double u) {
        return sum(weights) > 0 ? inverseCdf(weights, u) : inverseCdf(fallback, u);
    }

    static double sum(double[] w) {
        double total = 0;
        for (double x : w) {
            if (x > 0) {
                total += x;
            }
        }
        return total;
    }

    /** {@link Sampler#inverseCdf} over the positive weights, after checking there is mass to draw from. */
    static int inverseCdf(double[] weight, double u) {
        double total = sum(weight);
        if (!(total > 0) || Double.isInfinite(total)) {
            throw new IllegalArgumentException("a distribution to draw from must have finite positive mass, but had "
                    + total + ".");
        }
        return Sampler.inverseCdf(weight, total, u);
    }

    private static void requireRows(String name, int rows, int expected, int n) {
        if (rows != expected) {
            throw new IllegalArgumentException("verifying " + n + " draft tokens needs " + expected + " rows of "
                    + name + ", but got " + rows + ".");
        }
    }

    static void requireLength(String name, double[] row, int vocab) {
        if (row == null || row.length != vocab) {
            throw new IllegalArgumentException(name + " must have " + vocab + " entries (the vocabulary), but had "
                    + (row == null ? "none" : row.length) + ".");
        }
    }
}
