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
 * @param hypotheses   a search's n-best list, best first (beam search: the first is this result's own
 *                     tokens); empty for a method that keeps one hypothesis
 */
public record GenerationResult(int[] promptIds, int[] generatedIds, String text, FinishReason finishReason,
                               Usage usage, GenerationStats stats, List<TokenEvent> logprobs, DecodeStats decodeStats,
                               List<Hypothesis> hypotheses) {

    public GenerationResult {
        if (decodeStats == null) {
            decodeStats = DecodeStats.plain(stats, generatedIds.length);
        }
        hypotheses = hypotheses == null ? List.of() : List.copyOf(hypotheses);
    }

    /** A result of a method that keeps one hypothesis. */
    public GenerationResult(int[] promptIds, int[] generatedIds, String text, FinishReason finishReason,
                            Usage usage, GenerationStats stats, List<TokenEvent> logprobs, DecodeStats decodeStats) {
        this(promptIds, generatedIds, text, finishReason, usage, stats, logprobs, decodeStats, List.of());
    }

    /** A result of plain decoding (its {@link DecodeStats} derived from {@code stats}). */
    public GenerationResult(int[] promptIds, int[] generatedIds, String text, FinishReason finishReason,
                            Usage usage, GenerationStats stats, List<TokenEvent> logprobs) {
        this(promptIds, generatedIds, text, finishReason, usage, stats, logprobs, null, List.of());
    }

    /**
     * Tokens after the first per second of decode time (0 when there were none), comparable across
     * methods (unlike {@link GenerationStats#decodeStepsPerSecond()}, which counts rounds). Exact for plain
     * decoding, whose prefill yields the first token; a method whose first round yields it (speculative,
     * tree, ...) has that round's time in decode, so the figure understates it by at most one token's
     * share.
     */
    public double decodeTokensPerSecond() {
        int later = generatedIds.length - 1;
        return later <= 0 || stats.decodeMillis() <= 0 ? 0 : later * 1000.0 / stats.decodeMillis();
    }

    /** This result with other decode stats. */
    public GenerationResult withDecodeStats(DecodeStats decodeStats) {
        return new GenerationResult(promptIds, generatedIds, text, finishReason, usage, stats, logprobs, decodeStats, hypotheses);
    }
}
