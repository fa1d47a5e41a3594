package dev.tandem.runtime.cpu;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The multiply-add probe's bookkeeping and its chains' arithmetic; the figures belong in benchmarks. */
class FmaPeakTest {

    @Test
    void reportsOneSortedPositiveRatePerPass() {
        try (CpuThreadPool pool = new CpuThreadPool(2)) {
            FmaPeak.Result r = FmaPeak.measure(pool, 3, 5);
            assertEquals(2, r.threads());
            assertEquals(3, r.macsPerSecond().length);
            for (int i = 0; i < 3; i++) {
                assertTrue(r.macsPerSecond()[i] > 0 && Double.isFinite(r.macsPerSecond()[i]));
                assertTrue(i == 0 || r.macsPerSecond()[i - 1] <= r.macsPerSecond()[i], "sorted");
            }
            assertEquals(r.macsPerSecond()[2], r.best());
        }
    }

    @Test
    void vectorChainsComputeWhatTheScalarChainsCompute() {
        // Chain j is c ← fma(c, 0.999, 0.001) from seed + j in every lane; the result is lane 0 of the
        // chains summed in order, so both implementations give the same bits.
        Kernels vector = Kernels.select();
        Kernels scalar = new ScalarKernels(vector.lanes());
        float v = vector.fmaChains(3f, 1000);
        assertEquals(Float.floatToRawIntBits(scalar.fmaChains(3f, 1000)), Float.floatToRawIntBits(v));
        float expected = 0;
        for (int chain = 0; chain < Kernels.FMA_CHAINS; chain++) {
            float c = 3f + chain;
            for (int i = 0; i < 1000; i++) {
                c = Math.fma(c, 0.999f, 1e-3f);
            }
            expected = chain == 0 ? c : expected + c;
        }
        assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(v));
    }

    @Test
    void rejectsNonPositiveSettings() {
        try (CpuThreadPool pool = new CpuThreadPool(1)) {
            assertThrows(IllegalArgumentException.class, () -> FmaPeak.measure(pool, 0, 5));
            assertThrows(IllegalArgumentException.class, () -> FmaPeak.measure(pool, 1, 0));
        }
    }
}
