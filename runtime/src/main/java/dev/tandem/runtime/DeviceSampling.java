package dev.tandem.runtime;

import dev.tandem.runtime.rng.RngPurpose;

/**
 * Draws and speculative verification that a backend runs where the logits are, so that only token ids cross
 * to the host: what a device backend adds beside {@link Backend} (the CPU backend's logits are on the host
 * already, so decoding reads them there). Both follow the decoding layer's host arithmetic (Sampler's weights
 * e^(l/T − max) in double, inverse-CDF draws in increasing id order, {@link dev.tandem.runtime.rng.CounterRng}
 * draws keyed by seed, stream, position and purpose) for a temperature alone, with sums added in another fixed
 * order, so a token or a decision can differ from the host's only where a draw falls within rounding of a
 * boundary.
 */
public interface DeviceSampling {

    /** The longest draft chain {@link #verifyChain} takes. */
    int MAX_VERIFY_DRAFT = 63;

    /**
     * One token per row of the f32 logits {@code logits[rows, vocab]}, drawn after the temperature: as
     * {@code Sampler.sample} draws (weights over their sum, target u · Σw) or, with {@code normalized}, as a
     * drafter draws from its distribution q (q = w / Σw, target u), u the draw of {@code purpose} at
     * ({@code seed}, {@code streams[r]}, {@code positions[r]}).
     *
     * @throws IllegalArgumentException for a row holding NaN or +Infinity or only -Infinity (the host's sentences)
     */
    int[] sampleWithTemperature(Tensor logits, float temperature, long seed, long[] streams, long[] positions, RngPurpose purpose,
                                boolean normalized);

    /**
     * Exact speculative sampling of a drafted chain ({@code ChainVerifier.sample} for a temperature alone):
     * {@code target} holds the target's raw logits, one row per draft token plus one (none extra when
     * {@code openEnded}), {@code draft} the draft's raw logits each token was drawn from (null for a
     * deterministic drafter), {@code position} the absolute position of {@code tokens[0]}.
     *
     * @return the accepted count and the next token (-1 when {@code openEnded} and every token was accepted)
     * @throws IllegalArgumentException for a bad row (NaN, +Infinity, only -Infinity), a token outside the
     *     vocabulary, a token its draft row gives probability 0, or a chain longer than {@link #MAX_VERIFY_DRAFT}
     */
    ChainOutcome verifyChain(Tensor target, Tensor draft, int[] tokens, float temperature, long seed, long stream, long position,
                             boolean openEnded);

    /** What a verification decided: how many draft tokens it accepted, and the token after them (or -1). */
    record ChainOutcome(int accepted, int next) {}
}
