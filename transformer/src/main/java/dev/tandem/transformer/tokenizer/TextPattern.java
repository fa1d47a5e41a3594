package dev.tandem.transformer.tokenizer;

import dev.tandem.runtime.TandemException;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A {@code tokenizer.json} pattern compiled to a Java regex; {@code literal} is the text of a
 * {@code {"String": ...}} pattern (null for a regex), which streaming needs to know; {@code where} names
 * it in sentences (the file and the field).
 *
 * <p>A regular expression from a file can backtrack without end on some text (a nested quantifier such as
 * {@code (a+)+b}), which would hang the request and its thread. {@link #matcher} bounds the work: the
 * regex may read the text's characters at most {@link #READS_PER_CHAR} times each (plus a fixed
 * allowance) before the match is abandoned with a {@link TandemException} naming the pattern. The
 * patterns real tokenizers use read each character a few times.
 */
record TextPattern(Pattern regex, String literal, String where) {
    /** How many times a match may read each character of the text, on average, before it is abandoned. */
    static final long READS_PER_CHAR = 1_000;
    /** Reads allowed on top, so that short texts get room too. */
    static final long READS_ALLOWANCE = 1_000_000;

    /** A matcher over {@code text} that throws a {@link TandemException} when the pattern backtracks too much. */
    Matcher matcher(String text) {
        return regex.matcher(new BoundedText(text, this));
    }

    /** Every non-overlapping match, leftmost first, replaced by {@code content} taken literally. */
    String replaceAll(String text, String content) {
        return matcher(text).replaceAll(Matcher.quoteReplacement(content));
    }

    /** {@code text} as the regex engine reads it, one {@link #charAt} at a time, counted. */
    private static final class BoundedText implements CharSequence {
        private final String text;
        private final TextPattern pattern;
        private final long limit;
        private long reads;

        BoundedText(String text, TextPattern pattern) {
            this.text = text;
            this.pattern = pattern;
            this.limit = READS_ALLOWANCE + READS_PER_CHAR * text.length();
        }

        @Override
        public char charAt(int index) {
            if (++reads > limit) {
                throw new TandemException(pattern.where + " backtracks without end on a text of " + text.length()
                        + " characters (more than " + limit + " character reads), so this tokenizer cannot encode it;"
                        + " the pattern needs fixing.");
            }
            return text.charAt(index);
        }

        @Override
        public int length() {
            return text.length();
        }

        @Override
        public CharSequence subSequence(int start, int end) {
            return text.subSequence(start, end);
        }

        @Override
        public String toString() {
            return text;
        }
    }
}
