package dev.tandem.decoding.speculative;

import dev.tandem.runtime.rng.CounterRng;
import dev.tandem.runtime.rng.RngPurpose;
import java.util.Arrays;
import org.apache.commons.math3.distribution.ChiSquaredDistribution;
import org.apache.commons.math3.distribution.PoissonDistribution;

/**
 * Shared statistics for the verifier tests: the seed, the Bonferroni-corrected significance level, the
 * number of draws a chi-square goodness-of-fit test needs, and the test itself.
 *
 * <p><b>Draw count.</b> A chi-square test over k cells with N draws, when the truth is p' instead of p, has
 * a statistic that is (asymptotically) noncentral chi-square with k − 1 degrees of freedom and
 * noncentrality λ = N · Σ (p'_i − p_i)² / p_i. Among all p' at total-variation distance δ from p, the
 * worst case (smallest λ) is bounded below independently of p: split d = p' − p into its positive part on
 * a set S and negative part on T (each summing to δ); by Cauchy–Schwarz Σ_S d²/p ≥ δ²/p(S) and
 * Σ_T d²/p ≥ δ²/p(T), and 1/a + 1/b ≥ 4/(a + b) ≥ 4 for a + b ≤ 1, so λ ≥ 4Nδ² (attained when p' moves
 * δ of mass from one half of p to the other, proportionally). We therefore pick the smallest N whose
 * power at λ = 4Nδ² is at least {@link #POWER}, computing the noncentral chi-square tail EXACTLY as the
 * Poisson mixture P(χ'²_ν(λ) &gt; c) = Σ_j Pois(j; λ/2) · P(χ²_{ν+2j} &gt; c) (no normal/Patnaik
 * approximation needed). That bound holds only if no cells are pooled, so N is also raised until every
 * cell expects at least 5 draws: N ≥ 5 / min p (the smallest nonzero target probability). The vocabulary
 * size enters through ν = k − 1.
 */
final class VerifierStatistics {

    private VerifierStatistics() {}

    /** Fixed by default so failures reproduce; override with -Dtandem.test.seed=... (never retuned). */
    static final long SEED = Long.getLong("tandem.test.seed", 0x5EC5A3D1L);

    /** Family-wise significance over every chi-square test in {@link StatisticalVerifierTest}. */
    static final double FAMILY_ALPHA = 0.001;

    /** Total-variation distance every goodness-of-fit test must detect ... */
    static final double DETECTABLE_TV = 0.01;

    /** ... with this power. */
    static final double POWER = 0.99;

    /** The number of draws for a test over {@code cells} categories whose smallest expected probability is {@code minP}. */
    static int draws(int cells, double minP, double alpha) {
        int df = cells - 1;
        double critical = new ChiSquaredDistribution(df).inverseCumulativeProbability(1 - alpha);
        // Smallest λ with power ≥ POWER, by bisection (power increases with λ).
        double lo = 0;
        double hi = 1;
        while (power(df, hi, critical) < POWER) {
            hi *= 2;
        }
        for (int it = 0; it < 60; it++) {
            double mid = (lo + hi) / 2;
            if (power(df, mid, critical) >= POWER) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        long forPower = (long) Math.ceil(hi / (4 * DETECTABLE_TV * DETECTABLE_TV));
        long forNoPooling = (long) Math.ceil(5 / minP);
        return (int) Math.max(forPower, forNoPooling);
    }

    /** P(noncentral χ²(df, λ) &gt; critical), exactly, as a Poisson(λ/2) mixture of central χ² tails. */
    static double power(int df, double lambda, double critical) {
        if (lambda == 0) {
            return 1 - new ChiSquaredDistribution(df).cumulativeProbability(critical);
        }
        double mean = lambda / 2;
        PoissonDistribution poisson = new PoissonDistribution(mean);
        int last = (int) Math.ceil(mean + 12 * Math.sqrt(mean) + 30);
        double total = 0;
        for (int j = 0; j <= last; j++) {
            double w = poisson.probability(j);
            if (w > 0) {
                total += w * (1 - new ChiSquaredDistribution(df + 2.0 * j).cumulativeProbability(critical));
            }
        }
        return total;
    }

    /** Smallest nonzero entry. */
    static double minPositive(double[] p) {
        return Arrays.stream(p).filter(x -> x > 0).min().orElseThrow();
    }

    /** Number of nonzero entries (the chi-square cells). */
    static int support(double[] p) {
        return (int) Arrays.stream(p).filter(x -> x > 0).count();
    }

    /** The outer product: joint[a · V + b] = p[a] · r[b]. */
    static double[] outer(double[] p, double[] r) {
        double[] joint = new double[p.length * r.length];
        for (int a = 0; a < p.length; a++) {
            for (int b = 0; b < r.length; b++) {
                joint[a * r.length + b] = p[a] * r[b];
            }
        }
        return joint;
    }

    /** Normalises a copy of {@code w} to sum to 1. */
    static double[] normalized(double... w) {
        double total = Arrays.stream(w).sum();
        return Arrays.stream(w).map(x -> x / total).toArray();
    }

    /**
     * A drafter's draw from {@code q}: inverse CDF with its own uniform (purpose DRAFT), written here
     * independently of the verifier's code.
     */
    static int draft(double[] q, long stream, long position, int index) {
        double u = CounterRng.uniform(SEED, stream, position, RngPurpose.DRAFT, index);
        double total = 0;
        for (double x : q) {
            total += x;
        }
        double c = 0;
        int last = -1;
        for (int t = 0; t < q.length; t++) {
            if (q[t] > 0) {
                c += q[t] / total;
                last = t;
                if (u < c) {
                    return t;
                }
            }
        }
        return last;
    }

    /** {@code count} tokens drawn from q without replacement (each from q minus the earlier ones, renormalised). */
    static int[] draftWithoutReplacement(double[] q, int count, long stream, long position, int firstIndex) {
        double[] left = q.clone();
        int[] out = new int[count];
        for (int k = 0; k < count; k++) {
            out[k] = draft(left, stream, position, firstIndex + k);
            left[out[k]] = 0;
        }
        return out;
    }
}
