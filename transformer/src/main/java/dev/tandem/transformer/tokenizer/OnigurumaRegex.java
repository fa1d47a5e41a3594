package dev.tandem.transformer.tokenizer;

import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Compiles the regular expressions of {@code tokenizer.json} (written for Oniguruma, which the Rust
 * {@code tokenizers} crate runs them with, in its default Ruby syntax) as Java patterns that match the
 * same text. The Llama 3 and Qwen pre-tokenizer patterns need no rewriting; the flags do the work.
 */
final class OnigurumaRegex {

    /**
     * UNICODE_CHARACTER_CLASS makes {@code \s}, {@code \w}, {@code \d}, {@code \b} and case folding
     * Unicode-aware, as Oniguruma's are on UTF-8 text (Java's default {@code \s} is ASCII only and would
     * split text with U+00A0 or U+3000 differently). In Ruby syntax {@code ^} and {@code $} always
     * match at line breaks and only {@code \n} breaks a line (also for {@code .}): MULTILINE with
     * UNIX_LINES.
     */
    static final int FLAGS = Pattern.UNICODE_CHARACTER_CLASS | Pattern.MULTILINE | Pattern.UNIX_LINES;

    /** POSIX bracket names ({@code [[:alpha:]]}) to the Java property with the same (Unicode) meaning. */
    private static final Map<String, String> POSIX = Map.ofEntries(
            Map.entry("alnum", "Alnum"), Map.entry("alpha", "Alpha"), Map.entry("ascii", "ASCII"),
            Map.entry("blank", "Blank"), Map.entry("cntrl", "Cntrl"), Map.entry("digit", "Digit"),
            Map.entry("graph", "Graph"), Map.entry("lower", "Lower"), Map.entry("print", "Print"),
            Map.entry("punct", "Punct"), Map.entry("space", "Space"), Map.entry("upper", "Upper"),
            Map.entry("xdigit", "XDigit"));

    private OnigurumaRegex() {}

    /**
     * Compiles {@code pattern}.
     *
     * @throws PatternSyntaxException if it does not compile, even after translation
     */
    static Pattern compile(String pattern) {
        return Pattern.compile(toJava(pattern), FLAGS);
    }

    /**
     * Rewrites the Oniguruma constructs that Java spells differently or reads otherwise: {@code \p{^X}}
     * (negated property), script and binary property names without Java's {@code Is} prefix
     * ({@code \p{Han}}), {@code \h}/{@code \H} (a hex digit in Ruby syntax, horizontal space in Java),
     * POSIX brackets, and the inline option {@code m} (dot-all in Ruby, multi-line in Java). Anything
     * else is passed on unchanged.
     */
    static String toJava(String pattern) {
        StringBuilder out = new StringBuilder(pattern.length() + 16);
        int classDepth = 0;
        int i = 0;
        while (i < pattern.length()) {
            char c = pattern.charAt(i);
            if (c == '\\' && i + 1 < pattern.length()) {
                char e = pattern.charAt(i + 1);
                int close = (e == 'p' || e == 'P') && pattern.startsWith("{", i + 2) ? pattern.indexOf('}', i + 3) : -1;
                if (close > 0) {
                    out.append(property(e == 'P', pattern.substring(i + 3, close)));
                    i = close + 1;
                } else if (e == 'h') {
                    out.append(classDepth > 0 ? "0-9a-fA-F" : "[0-9a-fA-F]");
                    i += 2;
                } else if (e == 'H' && classDepth == 0) {
                    out.append("[^0-9a-fA-F]");
                    i += 2;
                } else {
                    out.append(c).append(e);
                    i += 2;
                }
            } else if (c == '[' && classDepth > 0 && pattern.startsWith("[:", i) && posixEnd(pattern, i) > 0) {
                int end = posixEnd(pattern, i);
                String name = pattern.substring(i + 2, end);
                boolean negated = name.startsWith("^");
                String property = POSIX.get(negated ? name.substring(1) : name);
                out.append(property == null ? pattern.substring(i, end + 2) : "\\" + (negated ? 'P' : 'p') + "{" + property + "}");
                i = end + 2;
            } else if (c == '[') {
                classDepth++;
                out.append(c);
                i++;
            } else if (c == ']' && classDepth > 0) {
                classDepth--;
                out.append(c);
                i++;
            } else if (c == '(' && classDepth == 0 && pattern.startsWith("(?", i)) {
                int end = i + 2;
                while (end < pattern.length() && "imx-".indexOf(pattern.charAt(end)) >= 0) {
                    end++;
                }
                boolean options = end > i + 2 && end < pattern.length()
                        && (pattern.charAt(end) == ')' || pattern.charAt(end) == ':');
                out.append(options ? pattern.substring(i, end).replace('m', 's') : "(?");
                i = options ? end : i + 2;
            } else {
                out.append(c);
                i++;
            }
        }
        return out.toString();
    }

    /** Index of the ':' closing a POSIX bracket {@code [:name:]} that starts at {@code start}, or -1. */
    private static int posixEnd(String pattern, int start) {
        int colon = pattern.indexOf(":]", start + 2);
        return colon > 0 && pattern.substring(start + 2, colon).matches("\\^?[a-z]+") ? colon : -1;
    }

    private static String property(boolean negated, String name) {
        if (name.startsWith("^")) {
            negated = !negated;
            name = name.substring(1);
        }
        // General categories (L, Nd) and POSIX names (Alpha) are valid as they are; scripts and binary
        // properties (Han, White_Space) need Java's "Is" prefix.
        String java = compiles("\\p{" + name + "}") || !compiles("\\p{Is" + name + "}") ? name : "Is" + name;
        return "\\" + (negated ? 'P' : 'p') + "{" + java + "}";
    }

    private static boolean compiles(String regex) {
        try {
            Pattern.compile(regex, FLAGS);
            return true;
        } catch (PatternSyntaxException e) {
            return false;
        }
    }
}
