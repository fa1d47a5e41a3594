package dev.tandem.runtime.cpu;

/**
 * erf in float, for the exact GELU of BERT-family encoders: gelu(x) = x/2 · (1 + erf(x/√2)). For a = |x|,
 * <pre>
 *   erf(a) = a · P(a²)            a &lt; 1         P of degree 6
 *          = min(Q(a − 2.46), 1)  1 ≤ a &lt; 3.92  Q of degree 14
 *          = 1                    a ≥ 3.92      (1 − erf(3.92) = 2.9e-8, under half a float ulp below 1)
 * </pre>
 * and erf(−a) = −erf(a), each polynomial by Horner's rule in fused multiply-adds. Within 7.9e-8 of the true erf for
 * every float (the worst at 0.98533, where a float ulp is 6e-8; {@code FloatErfTest} holds it under 1e-7 against
 * {@link dev.tandem.runtime.Erf}). No exp: {@link VectorKernels} runs the same operations on every lane and gets these
 * bits, which the Vector API's lanewise EXP would not promise (it may round apart from Math.exp, and apart from
 * itself between interpreted and compiled code).
 * <p>
 * The coefficients are least-squares fits at Chebyshev nodes against mpmath's erf, rounded to float one at a time
 * with the rest refitted: {@code tools/erf/fit_erf_float.py} makes them. The well-known rational x·P(x²)/Q(x²) of
 * Eigen and XLA, evaluated in float the same way, is off by 3.3e-7 to 4e-7 near 1, hence a fit of our own.
 */
final class FloatErf {
    /** Where the first polynomial gives way to the second. */
    static final float SPLIT = 1f;
    /** The second polynomial is in a − CENTRE, the middle of [SPLIT, CUT). */
    static final float CENTRE = 2.46f;
    /** From here on erf is 1 in float. */
    static final float CUT = 3.92f;
    /** 1/√2 rounded to float: GELU's argument to erf. */
    static final float SQRT_HALF = 0.70710677f;

    /** erf(a) / a in powers of a², for a &lt; SPLIT. */
    static final float[] P = {
        1.1283791f, -0.376125f, 0.112827316f, -0.02682744f, 0.0051475205f, -0.00077015074f, 6.944789e-05f};
    /** erf(a) in powers of a − CENTRE, for SPLIT ≤ a &lt; CUT. */
    static final float[] Q = {
        0.99949664f, 0.0026562365f, -0.006534384f, 0.009832456f, -0.0099148685f, 0.0067995447f, -0.002935638f,
        0.00045933106f, 0.0003541386f, -0.00029961622f, 7.690853e-05f, 2.4706012e-05f, -1.7670107e-05f,
        9.4861136e-08f, 1.1367372e-06f};

    private FloatErf() {
    }

    /** erf(x) in float: ±1 beyond ±3.92 and at ±∞, NaN for NaN. */
    static float erf(float x) {
        float a = Math.abs(x);
        float r;
        if (a < SPLIT) {
            float s = a * a;
            float p = P[P.length - 1];
            for (int k = P.length - 2; k >= 0; k--) {
                p = Math.fma(p, s, P[k]);
            }
            r = a * p;
        } else {
            float u = a - CENTRE;
            float q = Q[Q.length - 1];
            for (int k = Q.length - 2; k >= 0; k--) {
                q = Math.fma(q, u, Q[k]);
            }
            r = Math.min(q, 1f);
        }
        if (a >= CUT) {
            r = 1f; // also for a = ∞; a NaN fails the test and stays NaN
        }
        return Math.copySign(r, x);
    }

    /** x/2 · (1 + erf(x · 1/√2)) in float, in this order. */
    static float gelu(float x) {
        return (0.5f * x) * (1f + erf(x * SQRT_HALF));
    }
}
