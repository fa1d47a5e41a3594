package dev.tandem.transformer.tokenizer;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A {@code tokenizer.json} pattern compiled to a Java regex; {@code literal} is the text of a
 * {@code {"String": ...}} pattern (null for a regex), which streaming needs to know.
 */
record TextPattern(Pattern regex, String literal) {

    /** Every non-overlapping match, leftmost first, replaced by {@code content} taken literally. */
    String replaceAll(String text, String content) {
        return regex.matcher(text).replaceAll(Matcher.quoteReplacement(content));
    }
}
