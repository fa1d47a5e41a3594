package dev.tandem.runtime;

/**
 * One measured limit of a backend's machine, per timed pass: bytes read per second
 * ({@link Backend#measureReadBandwidth}) or multiply-adds per second ({@link Backend#measureMultiplyAddPeak}).
 *
 * @param threads   threads (or streams) that ran at once
 * @param perSecond one figure per pass, sorted ascending
 */
public record Roofline(int threads, double[] perSecond) {
    public Roofline {
        if (perSecond.length == 0) {
            throw new IllegalArgumentException("a roofline needs at least one pass");
        }
        perSecond = perSecond.clone();
        java.util.Arrays.sort(perSecond);
    }

    @Override
    public double[] perSecond() {
        return perSecond.clone();
    }

    public double best() {
        return perSecond[perSecond.length - 1];
    }

    public double median() {
        int n = perSecond.length;
        return n % 2 == 1 ? perSecond[n / 2] : (perSecond[n / 2 - 1] + perSecond[n / 2]) / 2;
    }
}
