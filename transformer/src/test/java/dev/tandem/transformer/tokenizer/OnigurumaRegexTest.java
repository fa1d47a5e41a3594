package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.PatternSyntaxException;
import org.junit.jupiter.api.Test;

/** Oniguruma (Ruby syntax) patterns of tokenizer.json files match in Java what they match in Rust. */
class OnigurumaRegexTest {

    private static List<String> matches(String oniguruma, String text) {
        Matcher m = OnigurumaRegex.compile(oniguruma).matcher(text);
        return m.results().map(r -> r.group()).toList();
    }

    @Test
    void shorthandClassesAreUnicode() {
        assertEquals(List.of("\u00A0\u3000"), matches("\\s+", "a\u00A0\u3000b"));
        assertEquals(List.of("héllo", "мир", "١٢"), matches("\\w+", "héllo, мир ١٢"));
        assertEquals(List.of("١٢"), matches("\\d+", "x١٢"));
    }

    @Test
    void caseInsensitiveGroupIsUnicode() {
        assertEquals(List.of("'S", "'ll"), matches("(?i:'s|'ll)", "IT'S we'll"));
    }

    @Test
    void scriptPropertiesWithoutIsPrefixAndNegatedPropertiesCompile() {
        assertEquals(List.of("漢字"), matches("\\p{Han}+", "abc漢字"));
        assertEquals(List.of("1-2"), matches("\\p{^L}+", "ab1-2cd"));
        assertEquals(List.of("ab", "cd"), matches("\\P{^L}+", "ab1-2cd"));
    }

    @Test
    void hexDigitShorthandAndPosixBracketsMeanWhatTheyDoInRuby() {
        assertEquals(List.of("0fA"), matches("\\h+", "xyz0fAg"));
        assertEquals(List.of("xyz", "g"), matches("\\H+", "xyz0fAg"));
        assertEquals(List.of("abé"), matches("[[:alpha:]]+", "12abé34"));
        assertEquals(List.of("12", "34"), matches("[[:^alpha:]]+", "12abé34"));
    }

    @Test
    void dotAndAnchorsFollowRubyLines() {
        // Ruby: ^ and $ match at every \n; (?m) makes . match \n (it is DOTALL, not MULTILINE).
        assertEquals(List.of("a", "b"), matches("^.", "a\nb"));
        assertEquals(List.of("a\nb"), matches("(?m:a.b)", "a\nb"));
        assertFalse(OnigurumaRegex.compile("a.b").matcher("a\nb").find());
        assertTrue(OnigurumaRegex.compile("a.b").matcher("a\rb").find()); // only \n ends a line
    }

    @Test
    void llama3AndQwenPatternsCompileUnchanged() {
        String llama3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
                + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
        assertEquals(llama3, OnigurumaRegex.toJava(llama3));
        assertEquals(List.of("Hello", ",", " world", "123", "4"), matches(llama3, "Hello, world1234"));
    }

    @Test
    void constructsWithoutAJavaEquivalentFailToCompile() {
        assertThrows(PatternSyntaxException.class, () -> OnigurumaRegex.compile("a\\Kb")); // \K: keep
    }
}
