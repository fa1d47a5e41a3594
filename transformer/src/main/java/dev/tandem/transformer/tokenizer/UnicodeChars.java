package dev.tandem.transformer.tokenizer;

/** Character classes as the Rust {@code tokenizers} crate tests them (Rust's {@code char} methods). */
final class UnicodeChars {
    private UnicodeChars() {}

    /**
     * Unicode White_Space, as Rust's {@code char::is_whitespace} and Oniguruma's {@code \s}. Java's
     * {@link Character#isWhitespace} differs: it excludes U+00A0, U+2007, U+202F and U+0085 and
     * includes U+001C..U+001F. Every White_Space character is in the BMP.
     */
    static boolean isWhiteSpace(int c) {
        return c == 0x85 || c == 0xA0 || c == 0x2007 || c == 0x202F
                || (Character.isWhitespace(c) && (c < 0x1C || c > 0x1F));
    }

    /** A word character of the Rust {@code regex} crate's Unicode {@code \w}. */
    static boolean isWordChar(int c) {
        return switch (Character.getType(c)) {
            case Character.NON_SPACING_MARK, Character.ENCLOSING_MARK, Character.COMBINING_SPACING_MARK,
                    Character.DECIMAL_DIGIT_NUMBER, Character.CONNECTOR_PUNCTUATION -> true;
            default -> Character.isAlphabetic(c) || c == 0x200C || c == 0x200D;
        };
    }

    /** Rust's {@code char::is_numeric}: general categories Nd, Nl and No. */
    static boolean isNumeric(int c) {
        int type = Character.getType(c);
        return type == Character.DECIMAL_DIGIT_NUMBER || type == Character.LETTER_NUMBER
                || type == Character.OTHER_NUMBER;
    }
}
