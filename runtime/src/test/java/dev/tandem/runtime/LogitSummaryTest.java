package dev.tandem.runtime;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The host reference of a logit summary against a sort of the row and the softmax written out. */
class LogitSummaryTest {

    @Test
    void topIdsAreTheRowSortedByValueThenIdAndTheFiguresAreTheSoftmaxs() {
        SplittableRandom rnd = new SplittableRandom(41);
        for (int trial = 0; trial < 200; trial++) {
            int width = 1 + rnd.nextInt(300);
            float[] row = new float[width];
            for (int i = 0; i < width; i++) {
                // Small integers: many ties; some masked.
                row[i] = rnd.nextInt(10) == 0 ? Float.NEGATIVE_INFINITY : rnd.nextInt(12) - 6;
            }
            int k = 1 + rnd.nextInt(10);
            LogitSummary s = LogitSummary.of(row, k);
            int[] sorted = IntStream.range(0, width).filter(i -> row[i] != Float.NEGATIVE_INFINITY).boxed()
                    .sorted(Comparator.<Integer>comparingDouble(i -> -row[i]).thenComparingInt(i -> i))
                    .mapToInt(Integer::intValue).limit(k).toArray();
            assertArrayEquals(sorted, s.ids(), "trial " + trial);
            if (sorted.length == 0) {
                assertEquals(-1, s.argmax());
                continue;
            }
            double max = row[sorted[0]];
            double z = 0;
            double entropy = 0;
            for (float l : row) {
                z += Math.exp(l - max);
            }
            for (float l : row) {
                double p = Math.exp(l - max) / z;
                entropy -= p > 0 ? p * Math.log(p) : 0;
            }
            assertEquals(1 / z, s.maxProbability(), 1e-15);
            assertEquals(entropy, s.entropy(), 1e-12);
            assertEquals(max + Math.log(z), s.logSumExp(), 1e-12);
            for (int j = 0; j < sorted.length; j++) {
                assertEquals(Math.log(Math.exp(row[sorted[j]] - max) / z), s.logProbability(j), 1e-12);
            }
            double second = sorted.length > 1 ? Math.exp(row[sorted[1]] - max) / z : 0;
            assertEquals(1 / z - second, s.margin(), 1e-15);
        }
    }

    @Test
    void aRowWithoutASoftmaxHasNoSummaryAndKIsBounded() {
        LogitSummary nan = LogitSummary.of(new float[] {1, Float.NaN, 2}, 2);
        assertFalse(nan.valid());
        assertEquals(-1, nan.argmax());
        assertFalse(LogitSummary.of(new float[] {1, Float.POSITIVE_INFINITY}, 2).valid());
        LogitSummary masked = LogitSummary.of(new float[] {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY}, 2);
        assertTrue(masked.valid());
        assertEquals(0, masked.ids().length);
        assertEquals(-1, masked.argmax());
        assertEquals(1, LogitSummary.of(new float[] {-0.0f, 0.0f}, 1).ids().length);
        assertEquals(0, LogitSummary.of(new float[] {-0.0f, 0.0f}, 1).argmax(), "-0 equals +0: the lower id");
        assertThrows(IllegalArgumentException.class, () -> LogitSummary.of(new float[] {1}, 0));
        assertThrows(IllegalArgumentException.class, () -> LogitSummary.of(new float[] {1}, LogitSummary.MAX_K + 1));
        assertTrue(Arrays.equals(new int[] {1, 0}, LogitSummary.of(new float[] {3, 5}, 5).ids()));
    }
}
