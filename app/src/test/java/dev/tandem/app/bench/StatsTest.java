package dev.tandem.app.bench;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class StatsTest {

    @Test
    void quartilesInterpolateBetweenOrderStatisticsLikeNumpy() {
        // numpy.percentile([4, 1, 3, 2], [25, 50, 75]) == [1.75, 2.5, 3.25]
        Stats even = Stats.of(new double[] {4, 1, 3, 2});
        assertEquals(1.75, even.q1(), 1e-12);
        assertEquals(2.5, even.median(), 1e-12);
        assertEquals(3.25, even.q3(), 1e-12);
        assertEquals(1.5, even.iqr(), 1e-12);
        // numpy.percentile([5, 1, 4, 2, 3], [25, 50, 75]) == [2, 3, 4]
        Stats odd = Stats.of(new double[] {5, 1, 4, 2, 3});
        assertEquals(2, odd.q1(), 1e-12);
        assertEquals(3, odd.median(), 1e-12);
        assertEquals(4, odd.q3(), 1e-12);
        assertArrayEquals(new double[] {5, 1, 4, 2, 3}, odd.values(), "values keep their measured order");
    }

    @Test
    void scalingScalesEveryStatistic() {
        Stats s = Stats.of(new double[] {1, 2, 3, 4}).scaled(10);
        assertEquals(25, s.median(), 1e-12);
        assertEquals(17.5, s.q1(), 1e-12);
    }

    @Test
    void noMeasurementsIsAnError() {
        assertThrows(IllegalArgumentException.class, () -> Stats.of(new double[0]));
    }
}
