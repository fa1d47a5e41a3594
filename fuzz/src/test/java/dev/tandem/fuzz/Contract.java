package dev.tandem.fuzz;

import dev.tandem.runtime.TandemException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The contract every parser of a user's file keeps under fuzzing: a valid result, or a
 * {@link TandemException} whose message is one sentence in our own words. Anything else — another
 * exception type, an {@link OutOfMemoryError} from an allocation sized by an unchecked number (the
 * fuzz JVMs run with a small heap), an input that takes more than {@link #SLOW_SECONDS} of CPU time — escapes
 * {@link #holds} and is a finding. An input that never returns is caught by surefire's fork timeout
 * instead (Jazzer's per-input timeout comes from JUnit's, which would also end the fuzzing itself).
 */
public final class Contract {
    /**
     * What a library's message or a Java type looks like inside a sentence: a qualified class name,
     * Jackson's source locations and token names, a stack frame.
     */
    private static final Pattern QUOTED = Pattern.compile("\"(?:[^\"\\\\]|\\\\.)*\"");
    private static final Pattern LEAK = Pattern.compile(
            "\\b(?:java|javax|jdk|sun|com|org)\\.[a-z0-9_]+\\.[\\w.$]*[A-Z]\\w*"
                    + "|\\[Source: |line: \\d+, column: \\d+\\]|\\b(?:VALUE_STRING|START_OBJECT|END_OBJECT|FIELD_NAME)\\b"
                    + "|\\bat [\\w.$]+\\([\\w.]+:\\d+\\)");

    /**
     * Seconds of the fuzzing thread's CPU time after which an input counts as a hang. CPU time, not wall
     * time: on a loaded machine (a CI runner with two cores, other builds beside it) a first input that
     * loads classes took 11 s of wall time while using a fraction of that on the CPU, and a backtracking
     * pattern or an endless loop burns CPU all the same.
     */
    static final int SLOW_SECONDS = 10;
    private static final java.lang.management.ThreadMXBean THREADS = java.lang.management.ManagementFactory.getThreadMXBean();

    private Contract() {
    }

    @FunctionalInterface
    public interface Parse {
        void run() throws Exception;
    }

    /**
     * Runs {@code parse}; a refusal must be one {@link TandemException} sentence, and either must come within
     * {@link #SLOW_SECONDS} (a parse of these small inputs takes milliseconds; one that takes seconds is a
     * hang in the making, such as a pattern that backtracks).
     */
    public static void holds(Parse parse) throws Exception {
        long start = threadNanos();
        try {
            parse.run();
        } catch (TandemException e) {
            assertOneSentence(e.getMessage());
        } finally {
            double seconds = (threadNanos() - start) / 1e9;
            if (seconds > SLOW_SECONDS) {
                throw new AssertionError(String.format("this input took %.1f s of CPU time (more than %d s)", seconds, SLOW_SECONDS));
            }
        }
    }

    /** The CPU time of the calling thread, or the wall clock where the JVM cannot measure it. */
    private static long threadNanos() {
        return THREADS.isCurrentThreadCpuTimeSupported() ? THREADS.getCurrentThreadCpuTime() : System.nanoTime();
    }

    /** One line, ending in a full stop, naming no Java type and quoting no library's message. */
    public static void assertOneSentence(String message) {
        if (message == null || message.isBlank()) {
            throw new AssertionError("a refusal without a message");
        }
        if (message.indexOf('\n') >= 0 || message.indexOf('\r') >= 0) {
            throw new AssertionError("a refusal of more than one line: " + message);
        }
        if (!message.endsWith(".")) {
            throw new AssertionError("a refusal that does not end a sentence: " + message);
        }
        // What a sentence quotes from the file is the user's text, whatever it spells.
        Matcher leak = LEAK.matcher(QUOTED.matcher(message).replaceAll("\"…\""));
        if (leak.find()) {
            throw new AssertionError("a refusal quoting a library or a Java type (" + leak.group() + "): " + message);
        }
    }

    /** A fresh directory for one fuzz JVM's files, removed when it exits. */
    public static Path scratchDirectory() {
        try {
            Path dir = Files.createTempDirectory("tandem-fuzz");
            dir.toFile().deleteOnExit();
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Writes {@code bytes} as {@code dir/name}, to be deleted when the JVM exits. */
    public static Path write(Path dir, String name, byte[] bytes) throws IOException {
        Path file = dir.resolve(name);
        Files.write(file, bytes);
        file.toFile().deleteOnExit();
        return file;
    }
}
