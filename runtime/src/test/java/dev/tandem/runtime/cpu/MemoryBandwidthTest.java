package dev.tandem.runtime.cpu;

import dev.tandem.runtime.Progress;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The bandwidth probe's bookkeeping; the figures themselves belong in benchmarks, not here. */
class MemoryBandwidthTest {

    @Test
    void reportsOneSortedPositiveRatePerPassAndCountsProgress() {
        List<Long> seen = new ArrayList<>();
        try (CpuThreadPool pool = new CpuThreadPool(2)) {
            MemoryBandwidth.Result r = MemoryBandwidth.measure(pool, 8L << 20, 3, (done, total) -> {
                assertEquals(3, total);
                seen.add(done);
            });
            assertEquals(2, r.threads());
            assertEquals(8L << 20, r.bytes());
            assertEquals(3, r.bytesPerSecond().length);
            for (int i = 0; i < 3; i++) {
                assertTrue(r.bytesPerSecond()[i] > 0 && Double.isFinite(r.bytesPerSecond()[i]));
                assertTrue(i == 0 || r.bytesPerSecond()[i - 1] <= r.bytesPerSecond()[i], "sorted");
            }
            assertEquals(r.bytesPerSecond()[1], r.median());
            assertEquals(r.bytesPerSecond()[2], r.best());
        }
        assertEquals(List.of(1L, 2L, 3L), seen);
    }

    @Test
    void rejectsABufferThatDoesNotSplitIntoWholeCacheLinesPerThread() {
        try (CpuThreadPool pool = new CpuThreadPool(2)) {
            assertThrows(IllegalArgumentException.class, () -> MemoryBandwidth.measure(pool, 64 * 3, 1, Progress.NONE));
            assertThrows(IllegalArgumentException.class, () -> MemoryBandwidth.measure(pool, 0, 1, Progress.NONE));
            assertThrows(IllegalArgumentException.class, () -> MemoryBandwidth.measure(pool, 1 << 20, 0, Progress.NONE));
        }
    }
}
