package dev.tandem.transformer.tokenizer;

import java.util.Map;

/**
 * The {@code model} of {@code tokenizer.json}: turns one pre-token (a "word" that the pre-tokenizer cut
 * out) into ids, never looking across pre-tokens. Implementations are immutable after construction and
 * safe for concurrent use.
 */
sealed interface TokenModel permits BpeModel, WordPieceModel {

    /** {@code model.vocab}: token string to id. */
    Map<String, Integer> vocab();

    /** Appends the ids of one non-empty pre-token. */
    void encode(String word, IntList out);
}
