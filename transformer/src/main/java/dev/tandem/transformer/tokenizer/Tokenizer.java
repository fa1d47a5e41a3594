package dev.tandem.transformer.tokenizer;

import java.util.OptionalInt;

/**
 * Text to token ids and back. Implementations are immutable once loaded and safe to use from many
 * threads at once; only the {@link StreamingDecoder}s they hand out carry per-stream state.
 */
public interface Tokenizer {

    /**
     * Encodes {@code text} with no BOS/EOS added. Added tokens (the {@code added_tokens} of
     * {@code tokenizer.json}) that appear literally in the text are matched first, leftmost and
     * longest, and emitted as their single id; the text between them is pre-tokenized and encoded.
     */
    default int[] encode(String text) {
        return encode(text, true);
    }

    /**
     * Encodes {@code text}; with {@code parseSpecialTokens} false, special added tokens such as
     * {@code <|endoftext|>} are not recognised and are encoded as the plain text they spell (so text
     * from a user cannot inject control tokens). Non-special added tokens are vocabulary extensions
     * and still match, as in Hugging Face {@code tokenizers} with {@code split_special_tokens}.
     */
    int[] encode(String text, boolean parseSpecialTokens);

    /**
     * Joins the bytes of all tokens and decodes them as UTF-8, malformed bytes becoming U+FFFD the way
     * Java's decoder replaces them. Special added tokens are rendered as their content.
     *
     * @throws IllegalArgumentException if an id names no token
     */
    String decode(int[] ids);

    /** One more than the largest id in the vocabulary and the added tokens. */
    int vocabSize();

    /** The id of the token whose vocabulary string (or added-token content) is {@code tokenContent}. */
    OptionalInt tokenId(String tokenContent);

    /**
     * The token's vocabulary string as {@code tokenizer.json} spells it (byte-level tokens keep their
     * mapped form, e.g. {@code "Ġthe"}), or the content of an added token.
     *
     * @throws IllegalArgumentException if {@code id} names no token
     */
    String tokenContent(int id);

    /**
     * The raw bytes this token decodes to; may be part of a UTF-8 character. A fresh array each call.
     *
     * @throws IllegalArgumentException if {@code id} names no token
     */
    byte[] tokenBytes(int id);

    /** A decoder for one stream of ids, emitting text as soon as it is whole UTF-8. */
    default StreamingDecoder streamingDecoder() {
        return new StreamingDecoder(this);
    }
}
