package dev.tandem.runtime;

/**
 * A failure caused by the caller's input or environment (a missing file, a malformed header, an
 * unsupported configuration, a prompt over a limit). The message is one sentence naming the cause
 * (file, field or limit), fit to show a user as it is; the command line prints it as its last line.
 * Programming errors stay ordinary runtime exceptions.
 *
 * <p>The message is kept on one line whatever it quotes from a file: control characters (a line break
 * in a token, an escape sequence that would drive the terminal) are written as escapes, see
 * {@link #oneLine}.
 */
public class TandemException extends RuntimeException {
    public TandemException(String message) {
        super(oneLine(message));
    }

    public TandemException(String message, Throwable cause) {
        super(oneLine(message), cause);
    }

    /**
     * {@code text} with every control character written as an escape — {@code \n}, {@code \r},
     * {@code \t}, else {@code \}{@code uXXXX} (C0 and C1 controls, DEL, and the Unicode line and paragraph
     * separators) — so that quoted input can neither break a one-line message nor send escape sequences
     * to a terminal. Null stays null.
     */
    public static String oneLine(String text) {
        if (text == null) {
            return null;
        }
        int first = 0;
        while (first < text.length() && !isControl(text.charAt(first))) {
            first++;
        }
        if (first == text.length()) {
            return text;
        }
        StringBuilder out = new StringBuilder(text.length() + 8).append(text, 0, first);
        for (int i = first; i < text.length(); i++) {
            char c = text.charAt(i);
            if (!isControl(c)) {
                out.append(c);
            } else if (c == '\n') {
                out.append("\\n");
            } else if (c == '\r') {
                out.append("\\r");
            } else if (c == '\t') {
                out.append("\\t");
            } else {
                out.append(String.format("\\u%04x", (int) c));
            }
        }
        return out.toString();
    }

    private static boolean isControl(char c) {
        return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == '\u2028' || c == '\u2029';
    }
}
