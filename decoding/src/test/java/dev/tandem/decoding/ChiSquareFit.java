package dev.tandem.decoding;

import org.apache.commons.math3.stat.inference.ChiSquareTest;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** The goodness-of-fit test every statistical test of a sampler or verifier uses. */
public final class ChiSquareFit {
    private ChiSquareFit() {}

    /**
     * Chi-square p-value of {@code observed} counts against {@code probabilities}, over the categories
     * with nonzero probability; a draw in a zero-probability category gives p-value 0. Categories
     * expecting fewer than 5 draws are pooled, and a pool still under 5 joins the smallest other
     * category. With a single category left there is nothing to test, and the p-value is 1.
     */
    public static double pValue(double[] probabilities, long[] observed) {
        long n = Arrays.stream(observed).sum();
        List<double[]> bins = new ArrayList<>(); // {expected, observed}
        double pooledExpected = 0;
        long pooledObserved = 0;
        for (int t = 0; t < probabilities.length; t++) {
            double e = probabilities[t] * n;
            if (e == 0) {
                if (observed[t] != 0) {
                    return 0.0;
                }
                continue;
            }
            if (e < 5) {
                pooledExpected += e;
                pooledObserved += observed[t];
            } else {
                bins.add(new double[] {e, observed[t]});
            }
        }
        if (pooledExpected > 0) {
            if (pooledExpected >= 5 || bins.isEmpty()) {
                bins.add(new double[] {pooledExpected, pooledObserved});
            } else {
                double[] smallest = bins.stream().min((a, b) -> Double.compare(a[0], b[0])).orElseThrow();
                smallest[0] += pooledExpected;
                smallest[1] += pooledObserved;
            }
        }
        if (bins.size() < 2) {
            return 1.0;
        }
        double[] e = bins.stream().mapToDouble(b -> b[0]).toArray();
        long[] o = bins.stream().mapToLong(b -> (long) b[1]).toArray();
        return new ChiSquareTest().chiSquareTest(e, o);
    }
}
