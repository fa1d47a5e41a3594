package dev.tandem.decoding;

/**
 * Timings of one generation. Prefill is the forward pass over the prompt (ending with the first
 * token's logits); decode is everything after it, in steps: for plain decoding one forward pass per
 * generated token after the first, for a method that guesses ahead one round (its drafting, its
 * verification pass and its verdict), which may yield several tokens.
 */
public record GenerationStats(double prefillMillis, double decodeMillis, int decodeSteps) {
    /**
     * Decode steps per second (0 when there were none): tokens per second for plain decoding, rounds per
     * second otherwise; {@link GenerationResult#decodeTokensPerSecond()} counts tokens for every method.
     */
    public double decodeStepsPerSecond() {
        return decodeSteps == 0 || decodeMillis <= 0 ? 0 : decodeSteps * 1000.0 / decodeMillis;
    }
}
