package dev.tandem.decoding;

import java.util.List;

/**
 * The outcome of one generation.
 *
 * @param promptIds    the prompt's token ids
 * @param generatedIds every token the model produced, including a final EOS token
 * @param text         the generated text (without the EOS token's text, cut before a stop string)
 * @param logprobs     one event per generated token, with log-probabilities when requested
 * @param decodeStats  forward passes, drafts accepted and time per phase of the {@link DecodingStrategy}
 *                     that produced it (plain decoding's when built without one)
 */
public record GenerationResult(int[] promptIds, int[] generatedIds, String text, FinishReason finishReason,
                               Usage usage, GenerationStats stats, List<TokenEvent> logprobs, DecodeStats decodeStats) {

    public GenerationResult {
        if (decodeStats == null) {
            decodeStats = DecodeStats.plain(stats, generatedIds.length);
        }
    }

    /** A result of plain decoding (its {@link DecodeStats} derived from {@code stats}). */
    public GenerationResult(int[] promptIds, int[] generatedIds, String text, FinishReason finishReason,
                            Usage usage, GenerationStats stats, List<TokenEvent> logprobs) {
        this(promptIds, generatedIds, text, finishReason, usage, stats, logprobs, null);
    }

    /** This result with other decode stats. */
    public GenerationResult withDecodeStats(DecodeStats decodeStats) {
        return new GenerationResult(promptIds, generatedIds, text, finishReason, usage, stats, logprobs, decodeStats);
    }
}
