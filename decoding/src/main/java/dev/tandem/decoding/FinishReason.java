package dev.tandem.decoding;

/** Why a generation ended; {@link #wireName()} is what JSON output shows. */
public enum FinishReason {
    /** The model produced one of the end-of-sequence tokens. */
    EOS("eos"),
    /** The text reached one of the request's stop strings (which is cut from the text). */
    STOP_STRING("stop"),
    /** The request's token limit was reached. */
    MAX_TOKENS("length"),
    /** The model's context window is full. */
    CONTEXT_FULL("context"),
    /** The caller stopped consuming the stream and closed it. */
    CANCELLED("cancelled");

    private final String wireName;

    FinishReason(String wireName) {
        this.wireName = wireName;
    }

    public String wireName() {
        return wireName;
    }
}
