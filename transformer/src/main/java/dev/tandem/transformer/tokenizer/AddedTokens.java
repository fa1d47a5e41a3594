package dev.tandem.transformer.tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Finds added tokens in text the way the Rust crate's {@code AddedVocabulary} does: leftmost match
 * first, the longest among those starting there, scanning on after it. A match that is then dropped (a
 * {@code single_word} token inside a word, or a special token while special tokens are not parsed) is
 * not searched again for shorter tokens: its text stays plain text.
 */
final class AddedTokens {

    /** One entry of {@code added_tokens}. */
    record Token(int id, String content, boolean special, boolean lstrip, boolean rstrip, boolean singleWord,
            boolean normalized) {}

    /** A token found at [start, end); the range includes whitespace taken by lstrip/rstrip. */
    record Match(int start, int end, int id) {}

    /** The tokens to find, by first character, longest content first. */
    private final Map<Character, Token[]> byFirstChar = new HashMap<>();

    /**
     * Finds {@code tokens} by their content; for the tokens matched in normalized text, the caller
     * passes them with their content normalized, as the Rust crate does.
     */
    AddedTokens(List<Token> tokens) {
        Map<Character, List<Token>> groups = new HashMap<>();
        for (Token t : tokens) {
            if (!t.content().isEmpty()) {
                groups.computeIfAbsent(t.content().charAt(0), k -> new ArrayList<>()).add(t);
            }
        }
        groups.forEach((c, list) -> byFirstChar.put(c, list.stream()
                .sorted(Comparator.comparingInt((Token t) -> t.content().length()).reversed())
                .toArray(Token[]::new)));
    }

    /** The added tokens in {@code text}, in order and not overlapping. */
    List<Match> find(String text, boolean parseSpecialTokens) {
        if (byFirstChar.isEmpty()) {
            return List.of();
        }
        List<Match> matches = new ArrayList<>();
        int consumed = 0; // end of the previous match: lstrip must not reach back past it
        int i = 0;
        while (i < text.length()) {
            Token token = longestAt(text, i);
            if (token == null) {
                i++;
                continue;
            }
            int start = i;
            int end = i + token.content().length();
            i = end; // scanning goes on after the match even if it is dropped
            if ((token.special() && !parseSpecialTokens) || (token.singleWord() && !isWholeWord(text, start, end))) {
                continue;
            }
            // lstrip/rstrip tokens swallow the whitespace beside them (e.g. "<mask>" in RoBERTa).
            if (token.lstrip()) {
                while (start > consumed && UnicodeChars.isWhiteSpace(text.charAt(start - 1))) {
                    start--;
                }
            }
            if (token.rstrip()) {
                while (end < text.length() && UnicodeChars.isWhiteSpace(text.charAt(end))) {
                    end++;
                }
            }
            matches.add(new Match(start, end, token.id()));
            consumed = end;
            i = end;
        }
        return matches;
    }

    private Token longestAt(String text, int i) {
        Token[] candidates = byFirstChar.get(text.charAt(i));
        if (candidates != null) {
            for (Token t : candidates) {
                if (text.startsWith(t.content(), i)) {
                    return t;
                }
            }
        }
        return null;
    }

    /** No word character ({@code \w}) touches the match on either side. */
    private static boolean isWholeWord(String text, int start, int end) {
        return (start == 0 || !UnicodeChars.isWordChar(text.codePointBefore(start)))
                && (end == text.length() || !UnicodeChars.isWordChar(text.codePointAt(end)));
    }
}
