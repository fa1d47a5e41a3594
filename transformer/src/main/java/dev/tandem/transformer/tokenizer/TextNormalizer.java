package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The {@code normalizer} of {@code tokenizer.json}: rewrites each stretch of text between added tokens
 * before it is pre-tokenized (and the content of added tokens marked {@code normalized}).
 */
@FunctionalInterface
interface TextNormalizer {

    /** The supported {@code type}s. */
    List<String> TYPES = List.of(
            "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Prepend", "Replace", "Strip", "BertNormalizer", "Sequence");

    String normalize(String text);

    /** The normalizer {@code node} describes; null or absent is the identity. */
    static TextNormalizer parse(JsonNode node, String path, TokenizerJson json) {
        if (TokenizerJson.absent(node)) {
            return text -> text;
        }
        return switch (json.type(node, path, TYPES)) {
            case "NFC" -> text -> Normalizer.normalize(text, Normalizer.Form.NFC);
            case "NFD" -> text -> Normalizer.normalize(text, Normalizer.Form.NFD);
            case "NFKC" -> text -> Normalizer.normalize(text, Normalizer.Form.NFKC);
            case "NFKD" -> text -> Normalizer.normalize(text, Normalizer.Form.NFKD);
            case "Lowercase" -> TextNormalizer::lowercase;
            case "Prepend" -> {
                String prepend = json.text(node, "prepend", path);
                // The Rust crate prepends to every non-empty stretch, also those after an added token.
                yield text -> text.isEmpty() ? text : prepend + text;
            }
            case "Replace" -> {
                TextPattern pattern = json.pattern(node, path);
                String content = json.text(node, "content", path);
                yield text -> pattern.replaceAll(text, content);
            }
            case "Strip" -> {
                boolean left = json.bool(node, "strip_left", false, path);
                boolean right = json.bool(node, "strip_right", false, path);
                yield text -> strip(text, left, right);
            }
            case "BertNormalizer" -> {
                // Defaults are the Rust crate's; strip_accents null (or left out) follows lowercase.
                boolean lowercase = json.bool(node, "lowercase", true, path);
                yield bert(json.bool(node, "clean_text", true, path),
                        json.bool(node, "handle_chinese_chars", true, path),
                        json.bool(node, "strip_accents", lowercase, path), lowercase);
            }
            case "Sequence" -> {
                JsonNode steps = json.array(node, "normalizers", path);
                List<TextNormalizer> sequence = new ArrayList<>();
                for (int i = 0; i < steps.size(); i++) {
                    sequence.add(parse(steps.get(i), path + ".normalizers[" + i + "]", json));
                }
                yield text -> {
                    for (TextNormalizer n : sequence) {
                        text = n.normalize(text);
                    }
                    return text;
                };
            }
            default -> throw new AssertionError("type checked above");
        };
    }

    /**
     * BERT's normalizer, in the Rust crate's order: {@code cleanText} drops U+0000, U+FFFD and control,
     * format and private-use characters (tab, line feed and carriage return excepted) and turns every
     * other White_Space character into a space; {@code chinese} puts a space on both sides of each CJK
     * ideograph so that it becomes a word of its own; {@code stripAccents} decomposes (NFD) and drops
     * non-spacing marks; {@code lowercase} lowers each character. Which characters are controls and
     * marks is decided by the Rust crate's Unicode 8.0 tables ({@link BertCharTables}).
     */
    private static TextNormalizer bert(boolean cleanText, boolean chinese, boolean stripAccents, boolean lowercase) {
        return text -> {
            StringBuilder out = new StringBuilder(text.length() + 8);
            text.codePoints().forEach(c -> {
                if (cleanText && UnicodeChars.inRanges(BertCharTables.REMOVED, c)) {
                    return;
                }
                if (cleanText && UnicodeChars.isWhiteSpace(c)) {
                    out.append(' ');
                } else if (chinese && isCjkIdeograph(c)) {
                    out.append(' ').appendCodePoint(c).append(' ');
                } else {
                    out.appendCodePoint(c);
                }
            });
            String result = out.toString();
            if (stripAccents) {
                StringBuilder stripped = new StringBuilder(result.length());
                Normalizer.normalize(result, Normalizer.Form.NFD).codePoints()
                        .filter(c -> !UnicodeChars.inRanges(BertCharTables.STRIPPED, c))
                        .forEach(stripped::appendCodePoint);
                result = stripped.toString();
            }
            return lowercase ? lowercase(result) : result;
        };
    }

    /** The CJK Unified and Compatibility Ideograph blocks that BERT treats as one-character words. */
    private static boolean isCjkIdeograph(int c) {
        return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF)
                || (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF)
                || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
    }

    /**
     * Lower-cases each character on its own, as Rust's {@code char::to_lowercase} (so a final capital
     * sigma becomes σ, not the word-final ς that {@link String#toLowerCase} would give).
     */
    private static String lowercase(String text) {
        StringBuilder out = new StringBuilder(text.length());
        text.codePoints().forEach(cp -> out.append(cp < 0x80
                ? String.valueOf((char) Character.toLowerCase(cp))
                : Character.toString(cp).toLowerCase(Locale.ROOT)));
        return out.toString();
    }

    /** Removes Unicode White_Space from the chosen ends, as Rust's {@code str::trim_start}/{@code trim_end}. */
    private static String strip(String text, boolean left, boolean right) {
        int start = 0;
        int end = text.length();
        while (left && start < end && UnicodeChars.isWhiteSpace(text.charAt(start))) {
            start++;
        }
        while (right && end > start && UnicodeChars.isWhiteSpace(text.charAt(end - 1))) {
            end--;
        }
        return text.substring(start, end);
    }
}
