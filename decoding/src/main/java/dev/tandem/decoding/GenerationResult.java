package dev.tandem.decoding;

import java.util.List;

/**
 * The outcome of one generation.
 *
 * @param promptIds    the prompt's token ids
 * @param generatedIds every token the model produced, including a final EOS token
 * @param text         the generated text (without the EOS token's text, cut before a stop string)
 * @param logprobs     one event per generated token, with log-probabilities when requested
 */
public record GenerationResult(int[] promptIds, int[] generatedIds, String text, FinishReason finishReason,
                               Usage usage, GenerationStats stats, List<TokenEvent> logprobs) {
}
