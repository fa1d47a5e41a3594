package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;

/**
 * The WordPiece {@code model} of a {@code tokenizer.json} (BERT and its descendants), as the Rust
 * crate's {@code WordPiece} runs it: a pre-token is cut from the left, each time taking the longest
 * vocabulary entry that the rest of the word starts with, spelled with the continuing-subword prefix
 * ({@code ##}) for every piece but the first ({@code "unaffable"} gives {@code un ##aff ##able}). If no
 * entry fits somewhere, or the word has more than {@code max_input_chars_per_word} characters, the whole
 * word becomes the one unknown token: WordPiece never mixes known pieces with {@code [UNK]} in a word.
 */
final class WordPieceModel implements TokenModel {

    private final Map<String, Integer> vocab;
    private final String prefix;
    private final int maxInputChars;
    private final int unkId;
    /** Length in UTF-16 units of the longest vocabulary entry: no longer candidate can match, so none is tried. */
    private final int longestToken;

    private WordPieceModel(Map<String, Integer> vocab, String prefix, int maxInputChars, int unkId) {
        this.vocab = vocab;
        this.prefix = prefix;
        this.maxInputChars = maxInputChars;
        this.unkId = unkId;
        this.longestToken = vocab.keySet().stream().mapToInt(String::length).max().orElse(0);
    }

    /**
     * Reads {@code model}, a WordPiece model object; fields left out take the Rust crate's defaults
     * ({@code [UNK]}, {@code ##}, 100).
     *
     * @throws dev.tandem.runtime.TandemException if the vocabulary is missing or lacks the unknown token
     */
    static WordPieceModel parse(JsonNode model, TokenizerJson json) {
        if (json.vocab == null) {
            throw json.fail("model.vocab is missing or not an object");
        }
        String unk = TokenizerJson.absent(model.path("unk_token")) ? "[UNK]" : json.text(model, "unk_token", "model");
        String prefix = TokenizerJson.absent(model.path("continuing_subword_prefix"))
                ? "##" : json.text(model, "continuing_subword_prefix", "model");
        int maxInputChars = json.nonNegativeInt(model, "max_input_chars_per_word", 100, "model");
        Integer unkId = json.vocab.get(unk);
        if (unkId == null) {
            // The Rust crate loads such a file and fails on the first word it cannot spell; we fail at once.
            throw json.fail("model.unk_token \"" + unk + "\" is not in model.vocab");
        }
        return new WordPieceModel(json.vocab, prefix, maxInputChars, unkId);
    }

    @Override
    public Map<String, Integer> vocab() {
        return vocab;
    }

    @Override
    public void encode(String word, IntList out) {
        if (word.codePointCount(0, word.length()) > maxInputChars) {
            out.add(unkId);
            return;
        }
        int wordStart = out.size();
        for (int start = 0; start < word.length(); ) {
            int end = longestMatchEnd(word, start);
            if (end < 0) {
                out.truncate(wordStart);
                out.add(unkId);
                return;
            }
            out.add(vocab.get(piece(word, start, end)));
            start = end;
        }
    }

    /** The end of the longest piece of {@code word} from {@code start} that is in the vocabulary, or -1. */
    private int longestMatchEnd(String word, int start) {
        int end = Math.min(word.length(), start + longestToken - (start > 0 ? prefix.length() : 0));
        if (end > start && end < word.length() && Character.isLowSurrogate(word.charAt(end))
                && Character.isHighSurrogate(word.charAt(end - 1))) {
            end--; // candidates end on whole characters, as the Rust crate's byte offsets do
        }
        while (end > start) {
            if (vocab.containsKey(piece(word, start, end))) {
                return end;
            }
            end -= Character.charCount(word.codePointBefore(end));
        }
        return -1;
    }

    private String piece(String word, int start, int end) {
        return start == 0 ? word.substring(0, end) : prefix + word.substring(start, end);
    }
}
