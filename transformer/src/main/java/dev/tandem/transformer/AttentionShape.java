package dev.tandem.transformer;

/**
 * Which keys the new rows of one sequence in a {@link Batch} attend to. Only the causal shape exists
 * so far (prefill, decode, chain verification); tree, bidirectional and segment shapes join it with
 * the paged-KV work, as further implementations of this interface.
 */
public sealed interface AttentionShape {

    /** Row i (at position p) sees every cached position up to and including p. */
    AttentionShape CAUSAL = new Causal();

    record Causal() implements AttentionShape {
    }
}
