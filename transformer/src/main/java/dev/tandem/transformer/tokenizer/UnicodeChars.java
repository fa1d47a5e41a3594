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

    /**
     * BERT's punctuation as the Rust crate's BertPreTokenizer tests it: ASCII punctuation (every
     * printable ASCII character that is neither a letter, a digit nor a space, so also
     * {@code $ + < = > ^ ` | ~}, which Unicode calls symbols) and the punctuation categories P* of
     * Unicode 8.0 (see {@link BertCharTables}), not of the JDK's newer Unicode.
     */
    static boolean isBertPunctuation(int c) {
        return inRanges(BertCharTables.PUNCTUATION, c);
    }

    /** Whether {@code c} lies in one of {@code ranges}, sorted inclusive (first, last) pairs. */
    static boolean inRanges(int[] ranges, int c) {
        int low = 0;
        int high = ranges.length / 2 - 1;
        while (low <= high) {
            int mid = (low + high) >>> 1;
            if (c < ranges[2 * mid]) {
                high = mid - 1;
            } else if (c > ranges[2 * mid + 1]) {
                low = mid + 1;
            } else {
                return true;
            }
        }
        return false;
    }
}
