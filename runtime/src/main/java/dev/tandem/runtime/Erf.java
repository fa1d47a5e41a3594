package dev.tandem.runtime;

/**
 * The error function in double, to about 1e-15 absolute: the JDK has none, and the exact GELU of BERT-family encoders
 * (x/2·(1 + erf(x/√2))) needs one. A reference, not a kernel: backends evaluate their own (float) approximations and
 * are checked against this.
 */
public final class Erf {
    private static final double TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

    private Erf() {
    }

    /** erf(x); ±1 beyond |x| = 6 (where 1 − erf is under 3e-17), NaN for NaN. */
    public static double erf(double x) {
        if (Double.isNaN(x)) {
            return Double.NaN;
        }
        double a = Math.abs(x);
        double r;
        if (a < 2.5) {
            // Maclaurin series: 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1)); at |x| < 2.5 the terms fall below 1e-17 by n ≈ 45.
            double term = a;   // (−1)^n x^(2n+1) / n!
            double sum = a;
            double x2 = a * a;
            for (int n = 1; n < 100; n++) {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.abs(add) < 1e-17 * Math.abs(sum)) {
                    break;
                }
            }
            r = TWO_OVER_SQRT_PI * sum;
        } else if (a < 6) {
            r = 1 - erfcContinuedFraction(a);
        } else {
            r = 1;
        }
        return x < 0 ? -r : r;
    }

    /** erfc(a) for a ≥ 2.5 by its continued fraction e^(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …)))), Lentz's method. */
    private static double erfcContinuedFraction(double a) {
        double tiny = 1e-300;
        double f = a;
        double c = a;
        double d = 0;
        for (int k = 1; k < 500; k++) {
            double coefficient = k / 2.0;
            d = a + coefficient * d;
            d = Math.abs(d) < tiny ? tiny : d;
            c = a + coefficient / c;
            c = Math.abs(c) < tiny ? tiny : c;
            d = 1 / d;
            double delta = c * d;
            f *= delta;
            if (Math.abs(delta - 1) < 1e-16) {
                break;
            }
        }
        return Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
    }
}
