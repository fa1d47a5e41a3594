package dev.tandem.decoding;

/**
 * Timings of one generation. Prefill is the forward pass over the prompt (ending with the first
 * token's logits); decode is every later forward pass, one per generated token after the first.
 */
public record GenerationStats(double prefillMillis, double decodeMillis, int decodeSteps) {
    /** Decode forward passes per second (0 when there were none). */
    public double decodeTokensPerSecond() {
        return decodeSteps == 0 || decodeMillis <= 0 ? 0 : decodeSteps * 1000.0 / decodeMillis;
    }
}
