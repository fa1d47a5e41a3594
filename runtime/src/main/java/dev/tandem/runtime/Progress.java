package dev.tandem.runtime;

import java.util.Locale;

/**
 * Progress of a long operation: called with the work done so far and the total, both in the
 * operation's unit (bytes for writers, items for counters). Called from the thread doing the work;
 * an implementation that throws aborts the operation (the operation cleans up after itself).
 */
@FunctionalInterface
public interface Progress {

    /** Ignores every update. */
    Progress NONE = (done, total) -> { };

    /**
     * Reports that {@code done} of {@code total} units are finished ({@code 0 <= done <= total});
     * {@code done} never decreases during one operation and reaches {@code total} at the end.
     */
    void update(long done, long total);

    /**
     * A byte count for messages, in decimal units with one decimal: {@code 512 B}, {@code 3.4 kB},
     * {@code 1.3 MB}, {@code 2.2 GB}.
     */
    static String formatBytes(long bytes) {
        if (bytes < 1000) {
            return bytes + " B";
        }
        String[] units = {"kB", "MB", "GB", "TB", "PB", "EB"};
        double v = bytes;
        int u = -1;
        while (v >= 999.95 && u < units.length - 1) {
            v /= 1000;
            u++;
        }
        return String.format(Locale.ROOT, "%.1f %s", v, units[u]);
    }
}
