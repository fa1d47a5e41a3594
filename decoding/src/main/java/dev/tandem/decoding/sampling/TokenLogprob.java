package dev.tandem.decoding.sampling;

/** A token id and its log-probability under the unprocessed logits. */
public record TokenLogprob(int token, float logprob) {}
