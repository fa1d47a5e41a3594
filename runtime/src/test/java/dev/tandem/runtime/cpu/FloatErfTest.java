package dev.tandem.runtime.cpu;

import dev.tandem.runtime.Erf;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The float erf of the CPU kernels against the double-precision {@link Erf}, and GELU built on it. */
class FloatErfTest {
    /** The error bound FloatErf promises; tools/erf/fit_erf_float.py measured 7.9e-8 over every float below 4.5. */
    private static final double ERF_BOUND = 1e-7;

    private double worst;
    private float worstAt;

    private void measure(float x) {
        double e = Math.abs(FloatErf.erf(x) - Erf.erf(x));
        if (e > worst) {
            worst = e;
            worstAt = x;
        }
        assertEquals(Float.floatToRawIntBits(-FloatErf.erf(x)), Float.floatToRawIntBits(FloatErf.erf(-x)), "odd at " + x);
    }

    @Test
    void erfIsWithin1e7OfTheReferenceOnADenseGrid() {
        // A grid of step 2^-16 over [-6, 6], and every float around the two joins: the first polynomial's end,
        // where the worst error is, and the cut to 1.
        for (int i = -6 << 16; i <= 6 << 16; i++) {
            measure(i * 0x1p-16f);
        }
        for (float x = 0.97f; x < 1.03f; x = Math.nextUp(x)) {
            measure(x);
        }
        for (float x = 3.9f; x < 3.94f; x = Math.nextUp(x)) {
            measure(x);
        }
        System.out.printf("FloatErf: max |error| %.3g at %s%n", worst, worstAt);
        assertTrue(worst <= ERF_BOUND, "max |erf_float − erf| = " + worst + " at " + worstAt);
    }

    @Test
    void erfKeepsItsLimitsZerosAndNaN() {
        assertEquals(Float.floatToRawIntBits(0f), Float.floatToRawIntBits(FloatErf.erf(0f)));
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(FloatErf.erf(-0f)));
        assertEquals(1f, FloatErf.erf(Float.POSITIVE_INFINITY));
        assertEquals(-1f, FloatErf.erf(Float.NEGATIVE_INFINITY));
        assertEquals(1f, FloatErf.erf(FloatErf.CUT));
        assertEquals(-1f, FloatErf.erf(-1e30f));
        assertTrue(Float.isNaN(FloatErf.erf(Float.NaN)));
        assertEquals(1e-30 * 2 / Math.sqrt(Math.PI), FloatErf.erf(1e-30f), 1e-37, "erf(x) ≈ 2x/√π near 0");
        for (float x = 0; x < 5; x += 0.001f) {
            float v = FloatErf.erf(x);
            assertTrue(v >= 0 && v <= 1, "erf(" + x + ") = " + v);
        }
    }

    @Test
    void geluIsWithinItsErfBoundOfTheExactForm() {
        // |error| ≤ |x|/2 · (erf's 7.9e-8 + the rounding of 1 + erf and of x/√2) + the last product's rounding.
        for (int i = -12 << 12; i <= 12 << 12; i++) {
            float x = i * 0x1p-12f;
            double exact = 0.5 * x * (1 + Erf.erf(x / Math.sqrt(2)));
            float got = FloatErf.gelu(x);
            assertTrue(Math.abs(got - exact) <= 1e-7 * (Math.abs(x) + Math.abs(exact)), "gelu(" + x + ") = " + got + ", exactly " + exact);
        }
        assertEquals(Float.POSITIVE_INFINITY, FloatErf.gelu(Float.POSITIVE_INFINITY));
        assertEquals(0f, FloatErf.gelu(-10f), 0f, "x/2 · (1 − 1) below the cut");
        assertTrue(Float.isNaN(FloatErf.gelu(Float.NaN)));
    }
}
