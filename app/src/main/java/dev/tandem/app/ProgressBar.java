package dev.tandem.app;

import dev.tandem.runtime.Progress;

import java.io.Console;
import java.io.PrintWriter;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * A {@link Progress} drawn on stderr. On a terminal, one line redrawn in place at most ten times a
 * second and ended with a newline when the work is done (or at {@link #close()}):
 * <pre>
 *   synth tinyllama-1.1b bf16 [#################.............] 58%  1.3/2.2 GB  3.1 s
 * </pre>
 * Elsewhere (a file, a pipe, a test), one plain line at each 10% step:
 * <pre>
 *   synth tinyllama-1.1b bf16: 60%  1.3/2.2 GB  3.1 s
 * </pre>
 * Amounts are bytes ({@link Unit#BYTES}, in decimal units) or plain counts ({@link Unit#COUNT}).
 * Not thread-safe: one thread reports.
 */
public final class ProgressBar implements Progress, AutoCloseable {

    /** How amounts are shown. */
    public enum Unit {
        /** {@code 1.3/2.2 GB}. */
        BYTES,
        /** {@code 580/1000}. */
        COUNT
    }

    private static final int WIDTH = 30;
    private static final long REDRAW_NANOS = 100_000_000L; // at most 10 redraws a second

    private final String label;
    private final Unit unit;
    private final PrintWriter err;
    private final boolean terminal;
    private final LongSupplier clock;
    private final long start;
    private long lastDraw = Long.MIN_VALUE;
    private int lastStep = -1;      // plain mode: the last 10% step printed
    private int lastWidth;          // terminal mode: characters of the last line drawn
    private boolean lineOpen;       // terminal mode: a line was drawn and not yet ended
    private boolean ended;

    /**
     * @param label    what is going on, e.g. {@code "synth tinyllama-1.1b bf16"}
     * @param terminal true to redraw one line in place, false for one line per 10% step
     */
    public ProgressBar(String label, Unit unit, PrintWriter err, boolean terminal) {
        this(label, unit, err, terminal, System::nanoTime);
    }

    ProgressBar(String label, Unit unit, PrintWriter err, boolean terminal, LongSupplier clock) {
        this.label = label;
        this.unit = unit;
        this.err = err;
        this.terminal = terminal;
        this.clock = clock;
        this.start = clock.getAsLong();
    }

    /** A bar on {@code err}, redrawn in place when the JVM runs in an interactive terminal ({@link #isTerminal()}). */
    public ProgressBar(String label, Unit unit, PrintWriter err) {
        this(label, unit, err, isTerminal());
    }

    /**
     * Whether the JVM has an interactive terminal. Since JDK 22 {@link System#console()} is non-null
     * even when the streams are redirected, so {@link Console#isTerminal()} decides.
     */
    public static boolean isTerminal() {
        Console c = System.console();
        return c != null && c.isTerminal();
    }

    @Override
    public void update(long done, long total) {
        if (ended) {
            return;
        }
        long now = clock.getAsLong();
        boolean complete = total > 0 ? done >= total : done > 0 && done == total;
        int percent = total > 0 ? (int) Math.min(100, Math.max(0, done * 100 / total)) : (complete ? 100 : 0);
        if (terminal) {
            if (complete || lastDraw == Long.MIN_VALUE || now - lastDraw >= REDRAW_NANOS) {
                String line = label + " " + bar(done, total) + " " + String.format(Locale.ROOT, "%3d%%", percent)
                        + "  " + amounts(done, total) + "  " + seconds(now);
                err.print("\r" + line + " ".repeat(Math.max(0, lastWidth - line.length())));
                lastWidth = line.length();
                lineOpen = true;
                lastDraw = now;
                if (complete) {
                    err.println();
                    lineOpen = false;
                    ended = true;
                }
                err.flush();
            }
        } else {
            int step = percent / 10;
            if (step > lastStep) {
                lastStep = step;
                err.println(label + ": " + (step * 10) + "%  " + amounts(done, total) + "  " + seconds(now));
                err.flush();
                if (complete) {
                    ended = true;
                }
            }
        }
    }

    /** Ends a line left open on the terminal (after a failure, say); idempotent. */
    @Override
    public void close() {
        if (lineOpen) {
            err.println();
            err.flush();
            lineOpen = false;
        }
        ended = true;
    }

    /** Seconds since the bar was made. */
    public double elapsedSeconds() {
        return (clock.getAsLong() - start) / 1e9;
    }

    private String bar(long done, long total) {
        int filled = total > 0 ? (int) Math.min(WIDTH, Math.max(0, done * WIDTH / total)) : 0;
        return "[" + "#".repeat(filled) + ".".repeat(WIDTH - filled) + "]";
    }

    private String amounts(long done, long total) {
        if (unit == Unit.COUNT) {
            return done + "/" + total;
        }
        // "1.3/2.2 GB": both in the total's unit.
        String t = Progress.formatBytes(total);
        int space = t.lastIndexOf(' ');
        String suffix = t.substring(space + 1);
        double scale = switch (suffix) {
            case "kB" -> 1e3;
            case "MB" -> 1e6;
            case "GB" -> 1e9;
            case "TB" -> 1e12;
            case "PB" -> 1e15;
            case "EB" -> 1e18;
            default -> 1;
        };
        String d = scale == 1 ? Long.toString(done) : String.format(Locale.ROOT, "%.1f", done / scale);
        return d + "/" + t;
    }

    private String seconds(long now) {
        return String.format(Locale.ROOT, "%.1f s", (now - start) / 1e9);
    }
}
