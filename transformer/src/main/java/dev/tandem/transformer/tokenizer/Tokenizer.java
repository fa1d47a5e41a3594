package dev.tandem.transformer.tokenizer;

import java.util.OptionalInt;

/**
 * Text to token ids and back, as a Hugging Face {@code tokenizer.json} describes: added tokens,
 * normalizer, pre-tokenizer, model, post-processor and decoder. Implementations are immutable once
 * loaded and safe to use from many threads at once; only the {@link StreamingDecoder}s they hand out
 * carry per-stream state.
 */
public interface Tokenizer {

    /**
     * Encodes {@code text} with no BOS/EOS or {@code [CLS]}/{@code [SEP]} added (see
     * {@link #withSpecialTokens}). Added tokens (the {@code added_tokens} of {@code tokenizer.json}) that
     * appear literally in the text are matched first, leftmost and longest, and emitted as their single
     * id; the text between them is normalized, pre-tokenized and encoded. Nothing is cut or padded,
     * whatever the file's {@code truncation} and {@code padding} say.
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
     * {@code ids} (one encoded sequence) wrapped as the {@code post_processor} says, e.g. with BOS
     * {@code <s>} prepended for Llama 2 style files; unchanged for files whose post-processor adds
     * nothing. Returns a new array.
     */
    int[] withSpecialTokens(int[] ids);

    /**
     * What an encoder (BERT and its kin) takes for one input: {@code ids} ({@code input_ids}) and the
     * token type id of each ({@code token_type_ids}, the segment: for BERT 0 for {@code [CLS] A [SEP]}
     * and 1 for the {@code B [SEP]} of a pair). The attention mask is all ones; padding a batch, and
     * keeping within the model's positions (512 for BERT), are the caller's, not the tokenizer's.
     */
    record EncoderInput(int[] ids, int[] typeIds) {
        public EncoderInput {
            if (ids.length != typeIds.length) {
                throw new IllegalArgumentException(ids.length + " ids but " + typeIds.length + " type ids");
            }
        }
    }

    /**
     * {@code ids} (one encoded sequence) wrapped as {@link #withSpecialTokens} wraps them, with the type
     * id of each as the {@code post_processor} gives it: all 0 for a single sequence in every published
     * file we know (BERT's included). Returns new arrays.
     */
    EncoderInput encoderInput(int[] ids);

    /**
     * Two encoded sequences (say a query and a passage, for a cross-encoder) wrapped as one input by the
     * {@code post_processor}'s pair form: {@code [CLS] A [SEP] B [SEP]} with type ids 0 for the first
     * part and 1 for {@code B [SEP]} in BERT, {@code <s> A </s></s> B </s>} for RoBERTa, the two
     * concatenated (type ids 0 and 1) without a post-processor. Returns new arrays.
     *
     * @throws UnsupportedOperationException if the post-processor has no pair form (a
     *     TemplateProcessing whose {@code pair} is empty)
     */
    EncoderInput encoderInput(int[] first, int[] second);

    /** Whether {@link #withSpecialTokens} adds any token. */
    default boolean addsSpecialTokens() {
        return withSpecialTokens(new int[0]).length > 0;
    }

    /**
     * Decodes {@code ids} through the {@code decoder} of {@code tokenizer.json}, keeping special tokens
     * (rendered as their content).
     *
     * @throws IllegalArgumentException if an id names no token
     */
    default String decode(int[] ids) {
        return decode(ids, false);
    }

    /**
     * Decodes {@code ids} through the {@code decoder} of {@code tokenizer.json} (for example byte-level
     * tokens to UTF-8, or SentencePiece {@code ▁} to spaces with {@code <0xNN>} byte-fallback runs to
     * characters). Malformed UTF-8 becomes U+FFFD. With {@code skipSpecialTokens}, special added tokens
     * are left out, otherwise they are rendered as their content. BERT's WordPiece decoder puts a space
     * before every token but the first, except that a {@code ##} piece joins the token before it, and
     * its cleanup removes the space before {@code . ? ! ,}: lowercased and accent-free text, with spaces
     * around other punctuation ({@code "hello, world : ( yes )"}), as the Rust crate decodes it.
     *
     * @throws IllegalArgumentException if an id names no token
     */
    String decode(int[] ids, boolean skipSpecialTokens);

    /** One more than the largest id in the vocabulary and the added tokens. */
    int vocabSize();

    /** The id of the token whose vocabulary string (or added-token content) is {@code tokenContent}. */
    OptionalInt tokenId(String tokenContent);

    /**
     * The token's vocabulary string as {@code tokenizer.json} spells it (byte-level tokens keep their
     * mapped form, e.g. {@code "Ġthe"}, SentencePiece ones their {@code ▁}), or the content of an added
     * token.
     *
     * @throws IllegalArgumentException if {@code id} names no token
     */
    String tokenContent(int id);

    /**
     * The bytes this token contributes to decoded text when it stands in the middle of it: for
     * byte-level tokens and {@code <0xNN>} byte-fallback tokens the raw bytes, which may be part of a
     * UTF-8 character; for others the UTF-8 of the decoder's per-token rendering (e.g. {@code "▁the"}
     * gives {@code " the"}). Rules for the start or end of the text (stripping a leading space) are not
     * applied. A fresh array each call.
     *
     * @throws IllegalArgumentException if {@code id} names no token
     */
    byte[] tokenBytes(int id);

    /**
     * A decoder for one stream of ids, emitting text as soon as it is final; the concatenation of its
     * output equals {@link #decode(int[])} of the same ids.
     */
    StreamingDecoder streamingDecoder();
}
