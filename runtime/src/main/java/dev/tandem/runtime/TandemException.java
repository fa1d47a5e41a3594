package dev.tandem.runtime;

/**
 * A failure caused by the caller's input or environment (a missing file, a malformed header, an
 * unsupported configuration, a prompt over a limit). The message is one sentence naming the cause
 * (file, field or limit), fit to show a user as it is; the command line prints it as its last line.
 * Programming errors stay ordinary runtime exceptions.
 */
public class TandemException extends RuntimeException {
    public TandemException(String message) {
        super(message);
    }

    public TandemException(String message, Throwable cause) {
        super(message, cause);
    }
}
