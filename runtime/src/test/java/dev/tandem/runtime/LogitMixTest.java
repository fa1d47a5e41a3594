package dev.tandem.runtime;

import dev.tandem.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link LogitMix}'s reference against a direct computation, its identities, and the CPU backend's op. */
class LogitMixTest {

    private static float[][] rows(SplittableRandom rnd, int n, int width) {
        float[][] x = new float[n][width];
        for (float[] row : x) {
            for (int t = 0; t < width; t++) {
                row[t] = (float) (rnd.nextGaussian() * 3);
            }
        }
        return x;
    }

    @Test
    void mixesInDoubleAndMasksByTheMaskRowsProbability() {
        SplittableRandom rnd = new SplittableRandom(5);
        float[][] x = rows(rnd, 3, 500);
        LogitMix mix = LogitMix.of(1.5f, -0.5f, 0.25f).withMask(0, 0.1);
        float[] got = mix.apply(x);
        // the plausible set straight from the definition: p(t) >= alpha * max p, with the softmax in double
        double max = Double.NEGATIVE_INFINITY;
        for (float v : x[0]) {
            max = Math.max(max, v);
        }
        double z = 0;
        for (float v : x[0]) {
            z += Math.exp(v - max);
        }
        int kept = 0;
        for (int t = 0; t < 500; t++) {
            double p = Math.exp(x[0][t] - max) / z;
            if (p >= 0.1 / z) {
                kept++;
                double expected = 1.5 * x[0][t] - 0.5 * x[1][t] + 0.25 * x[2][t];
                assertEquals(expected, got[t], 1e-5 * Math.max(1, Math.abs(expected)), "token " + t);
            } else {
                assertEquals(Float.NEGATIVE_INFINITY, got[t], "token " + t + " is outside the plausible set");
            }
        }
        assertTrue(kept >= 1 && kept < 500, "the mask kept " + kept + " of 500");
    }

    @Test
    void aUnitWeightOnOneRowReturnsThatRowExactly() {
        SplittableRandom rnd = new SplittableRandom(6);
        float[][] x = rows(rnd, 3, 300);
        assertArrayEquals(x[0], LogitMix.of(1f, 0f).apply(x));
        assertArrayEquals(x[1], LogitMix.of(0f, 1f, 0f).apply(x));
        assertArrayEquals(x[0], LogitMix.of(1f, -0f, 0f).withMask(0, 0).apply(x), "alpha 0 masks nothing");
        float[] masked = LogitMix.of(1f, 0f).withMask(0, 1).apply(x);
        int finite = 0;
        for (float v : masked) {
            finite += Float.isFinite(v) ? 1 : 0;
        }
        assertEquals(1, finite, "alpha 1 keeps only the mask row's largest");
    }

    @Test
    void theCpuBackendEqualsTheReference() {
        SplittableRandom rnd = new SplittableRandom(7);
        float[][] x = rows(rnd, 4, 1031);
        LogitMix mix = LogitMix.of(1.1f, -0.1f, 2f, -3f).withMask(2, 0.05);
        try (Backend cpu = new CpuBackend(1)) {
            Tensor t = cpu.allocate(4, 1031);
            cpu.writeRows(x, t, 0);
            Tensor out = cpu.allocate(1, 1031);
            cpu.mixLogits(t, mix, out);
            assertArrayEquals(mix.apply(x), cpu.readRows(out, 0, 1)[0]);
            assertThrows(IllegalArgumentException.class, () -> cpu.mixLogits(t, LogitMix.of(1, 1, 1, 1, 1), out), "more weights than rows");
            assertThrows(IllegalArgumentException.class, () -> cpu.mixLogits(t, mix, cpu.allocate(1, 1030)), "a narrower output");
        }
    }

    @Test
    void badMixesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> LogitMix.of());
        assertThrows(IllegalArgumentException.class, () -> LogitMix.of(1f, Float.NaN));
        assertThrows(IllegalArgumentException.class, () -> LogitMix.of(1f, Float.POSITIVE_INFINITY));
        assertThrows(IllegalArgumentException.class, () -> LogitMix.of(1f, 0f).withMask(2, 0.1));
        assertThrows(IllegalArgumentException.class, () -> LogitMix.of(1f, 0f).withMask(0, 1.5));
        assertThrows(IllegalArgumentException.class, () -> LogitMix.of(1f, 0f).withMask(0, Double.NaN));
        assertEquals(LogitMix.of(1f, 2f).withMask(1, 0.5), LogitMix.of(1f, 2f).withMask(1, 0.5));
    }
}
