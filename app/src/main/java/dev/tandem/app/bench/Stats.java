package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.Arrays;

/**
 * Median and interquartile range of repeated measurements (quartiles by linear interpolation between
 * order statistics, as R's default and NumPy's {@code percentile} compute them).
 */
public record Stats(double[] values, double median, double q1, double q3) {

    public static Stats of(double[] values) {
        if (values.length == 0) {
            throw new IllegalArgumentException("no measurements");
        }
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return new Stats(values.clone(), quantile(sorted, 0.5), quantile(sorted, 0.25), quantile(sorted, 0.75));
    }

    static double quantile(double[] sorted, double p) {
        double h = (sorted.length - 1) * p;
        int lo = (int) Math.floor(h);
        int hi = Math.min(lo + 1, sorted.length - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    public double iqr() {
        return q3 - q1;
    }

    /** The same statistics of {@code factor ×} every value. */
    public Stats scaled(double factor) {
        double[] v = values.clone();
        for (int i = 0; i < v.length; i++) {
            v[i] *= factor;
        }
        return of(v);
    }

    public ObjectNode toJson() {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("median", median);
        n.put("q1", q1);
        n.put("q3", q3);
        n.put("iqr", iqr());
        var all = n.putArray("values");
        for (double v : values) {
            all.add(v);
        }
        return n;
    }
}
