package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntPredicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The {@code pre_tokenizer} of {@code tokenizer.json}: cuts normalized text into the pieces ("words")
 * that the model encodes one by one, never across a cut. Pieces are never empty: as in the Rust crate,
 * a split that leaves an empty part drops it.
 */
@FunctionalInterface
interface PreTokenizer {

    /** The supported {@code type}s. */
    List<String> TYPES = List.of(
            "ByteLevel", "Split", "Metaspace", "Whitespace", "WhitespaceSplit", "BertPreTokenizer", "Digits",
            "Sequence");

    /**
     * A piece of text; {@code atTextStart} is true for the piece that starts the whole input, which
     * Metaspace's {@code prepend_scheme: "first"} treats differently (the Rust crate checks that the
     * piece's original offset is 0).
     */
    record Piece(String text, boolean atTextStart) {}

    /** Splits one non-empty piece, appending its non-empty parts to {@code out}. */
    void split(Piece piece, List<Piece> out);

    /** The pre-tokenizer {@code node} describes; null or absent keeps each stretch of text whole. */
    static PreTokenizer parse(JsonNode node, String path, TokenizerJson json) {
        if (TokenizerJson.absent(node)) {
            return (piece, out) -> out.add(piece);
        }
        return switch (json.type(node, path, TYPES)) {
            case "ByteLevel" -> byteLevel(
                    // Defaults are the Rust crate's, for files that leave the fields out.
                    json.bool(node, "add_prefix_space", true, path), json.bool(node, "use_regex", true, path));
            case "Split" -> {
                TextPattern pattern = json.pattern(node, path);
                Behavior behavior = Behavior.parse(node, path, json);
                boolean invert = json.bool(node, "invert", false, path);
                yield (piece, out) -> behavior.split(piece, regexSegments(pattern, piece.text(), invert), out);
            }
            case "Metaspace" -> metaspace(node, path, json);
            case "Whitespace" -> {
                // The Rust crate keeps the matches of \w+|[^\w\s]+ and drops what lies between them.
                Pattern words = OnigurumaRegex.compile("\\w+|[^\\w\\s]+");
                yield (piece, out) -> Behavior.REMOVED.split(piece, regexSegments(words, piece.text(), true), out);
            }
            case "WhitespaceSplit" -> (piece, out) ->
                    Behavior.REMOVED.split(piece, charSegments(piece.text(), UnicodeChars::isWhiteSpace), out);
            case "BertPreTokenizer" -> (piece, out) -> {
                // Cut at White_Space (dropped), then each punctuation character becomes a piece of its own.
                List<Piece> words = new ArrayList<>();
                Behavior.REMOVED.split(piece, charSegments(piece.text(), UnicodeChars::isWhiteSpace), words);
                for (Piece word : words) {
                    Behavior.ISOLATED.split(word, charSegments(word.text(), UnicodeChars::isBertPunctuation), out);
                }
            };
            case "Digits" -> {
                Behavior behavior = json.bool(node, "individual_digits", false, path)
                        ? Behavior.ISOLATED : Behavior.CONTIGUOUS;
                yield (piece, out) ->
                        behavior.split(piece, charSegments(piece.text(), UnicodeChars::isNumeric), out);
            }
            case "Sequence" -> {
                JsonNode steps = json.array(node, "pretokenizers", path);
                List<PreTokenizer> sequence = new ArrayList<>();
                for (int i = 0; i < steps.size(); i++) {
                    sequence.add(parse(steps.get(i), path + ".pretokenizers[" + i + "]", json));
                }
                yield (piece, out) -> {
                    List<Piece> pieces = List.of(piece);
                    for (PreTokenizer step : sequence) {
                        List<Piece> next = new ArrayList<>(pieces.size() * 2);
                        for (Piece p : pieces) {
                            step.split(p, next);
                        }
                        pieces = next;
                    }
                    out.addAll(pieces);
                };
            }
            default -> throw new AssertionError("type checked above");
        };
    }

    /**
     * Byte-level: a space is prepended to each piece that lacks one (if asked), the piece is split with
     * the GPT-2 pattern (if asked), and every part is spelled in the byte-level alphabet.
     */
    private static PreTokenizer byteLevel(boolean addPrefixSpace, boolean useRegex) {
        Pattern gpt2 = ByteLevel.gpt2Pattern();
        return (piece, out) -> {
            String text = addPrefixSpace && !piece.text().startsWith(" ") ? " " + piece.text() : piece.text();
            Piece spaced = new Piece(text, piece.atTextStart());
            List<Piece> parts = new ArrayList<>();
            if (useRegex) {
                Behavior.ISOLATED.split(spaced, regexSegments(gpt2, text, false), parts);
            } else {
                parts.add(spaced);
            }
            for (Piece part : parts) {
                out.add(new Piece(ByteLevel.spell(part.text()), part.atTextStart()));
            }
        };
    }

    /**
     * Metaspace (SentencePiece style): every ASCII space becomes the replacement character (U+2581 ▁),
     * one is prepended as {@code prepend_scheme} says, and the piece is split before each replacement.
     */
    private static PreTokenizer metaspace(JsonNode node, String path, TokenizerJson json) {
        String replacement = json.character(node, "replacement", path);
        int replacementChar = replacement.codePointAt(0);
        boolean split = json.bool(node, "split", true, path);
        String scheme = json.prependScheme(node, path);
        return (piece, out) -> {
            String text = piece.text().replace(" ", replacement);
            boolean prepend = switch (scheme) {
                case "always" -> true;
                case "first" -> piece.atTextStart();
                default -> false;
            };
            if (prepend && !text.startsWith(replacement)) {
                text = replacement + text;
            }
            Piece replaced = new Piece(text, piece.atTextStart());
            if (split) {
                Behavior.MERGED_WITH_NEXT.split(replaced, charSegments(text, c -> c == replacementChar), out);
            } else {
                out.add(replaced);
            }
        };
    }

    /**
     * The text cut into alternating gaps and matches of {@code pattern}, covering it all; each
     * segment is {start, end, 1 if a match (0 if not), flipped when {@code invert}}.
     */
    private static List<int[]> regexSegments(TextPattern pattern, String text, boolean invert) {
        return regexSegments(pattern.matcher(text), text, invert);
    }

    /** As {@link #regexSegments(TextPattern, String, boolean)}, for one of our own patterns. */
    private static List<int[]> regexSegments(Pattern pattern, String text, boolean invert) {
        return regexSegments(pattern.matcher(text), text, invert);
    }

    private static List<int[]> regexSegments(Matcher m, String text, boolean invert) {
        List<int[]> segments = new ArrayList<>();
        int match = invert ? 0 : 1;
        int previous = 0;
        while (m.find()) {
            if (m.start() > previous) {
                segments.add(new int[] {previous, m.start(), 1 - match});
            }
            segments.add(new int[] {m.start(), m.end(), match});
            previous = m.end();
        }
        if (previous < text.length()) {
            segments.add(new int[] {previous, text.length(), 1 - match});
        }
        return segments;
    }

    /** As {@link #regexSegments}, where each character satisfying {@code isMatch} is a match of its own. */
    private static List<int[]> charSegments(String text, IntPredicate isMatch) {
        List<int[]> segments = new ArrayList<>();
        int gapStart = 0;
        for (int i = 0; i < text.length(); ) {
            int c = text.codePointAt(i);
            int next = i + Character.charCount(c);
            if (isMatch.test(c)) {
                if (i > gapStart) {
                    segments.add(new int[] {gapStart, i, 0});
                }
                segments.add(new int[] {i, next, 1});
                gapStart = next;
            }
            i = next;
        }
        if (gapStart < text.length()) {
            segments.add(new int[] {gapStart, text.length(), 0});
        }
        return segments;
    }

    /** What a split does with the matches ({@code SplitDelimiterBehavior} in the Rust crate). */
    enum Behavior {
        /** Matches are dropped. */
        REMOVED,
        /** Matches are pieces of their own. */
        ISOLATED,
        /** A match joins the piece before it. */
        MERGED_WITH_PREVIOUS,
        /** A match joins the piece after it. */
        MERGED_WITH_NEXT,
        /** Adjacent matches form one piece. */
        CONTIGUOUS;

        static Behavior parse(JsonNode node, String path, TokenizerJson json) {
            String name = json.text(node, "behavior", path);
            return switch (name) {
                case "Removed" -> REMOVED;
                case "Isolated" -> ISOLATED;
                case "MergedWithPrevious" -> MERGED_WITH_PREVIOUS;
                case "MergedWithNext" -> MERGED_WITH_NEXT;
                case "Contiguous" -> CONTIGUOUS;
                default -> throw json.fail(path + ".behavior " + name + " is not one of Removed, Isolated,"
                        + " MergedWithPrevious, MergedWithNext, Contiguous");
            };
        }

        /**
         * Cuts {@code piece} at the segments (from {@link #regexSegments}) as this behaviour says,
         * following the Rust crate's {@code NormalizedString::split} step for step.
         */
        void split(Piece piece, List<int[]> segments, List<Piece> out) {
            List<int[]> kept = new ArrayList<>(segments.size());
            boolean previousMatch = false;
            switch (this) {
                case REMOVED -> segments.stream().filter(s -> s[2] == 0).forEach(kept::add);
                case ISOLATED -> kept.addAll(segments);
                case CONTIGUOUS, MERGED_WITH_PREVIOUS -> {
                    for (int[] s : segments) {
                        boolean match = s[2] == 1;
                        boolean extend = this == CONTIGUOUS ? match == previousMatch : match && !previousMatch;
                        if (extend && !kept.isEmpty()) {
                            kept.getLast()[1] = s[1];
                        } else {
                            kept.add(s.clone());
                        }
                        previousMatch = match;
                    }
                }
                case MERGED_WITH_NEXT -> {
                    for (int[] s : segments.reversed()) {
                        boolean match = s[2] == 1;
                        if (match && !previousMatch && !kept.isEmpty()) {
                            kept.getLast()[0] = s[0];
                        } else {
                            kept.add(s.clone());
                        }
                        previousMatch = match;
                    }
                    kept = kept.reversed();
                }
            }
            String text = piece.text();
            for (int[] s : kept) {
                if (s[1] > s[0]) {
                    out.add(new Piece(text.substring(s[0], s[1]), piece.atTextStart() && s[0] == 0));
                }
            }
        }
    }
}
