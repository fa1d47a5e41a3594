package dev.tandem.app;

/**
 * A usage error found by a command rather than by picocli: an option's value of the wrong form or
 * range, or options that do not go together. The command line answers it like picocli's own usage
 * errors: one sentence, exit code 2.
 */
public final class UsageException extends IllegalArgumentException {
    public UsageException(String sentence) {
        super(sentence);
    }

    public UsageException(String sentence, Throwable cause) {
        super(sentence, cause);
    }
}
