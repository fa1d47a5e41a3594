package dev.tandem.runtime.rng;

/**
 * What a random draw is for. Each purpose has its own counter space in {@link CounterRng}, so that, for
 * example, a draft token's draw and the test that accepts it are independent.
 *
 * <p>The ordinal is part of the Philox counter: never reorder or remove constants, only append (at most
 * 256), or every seeded output changes.
 */
public enum RngPurpose {
    SAMPLE,
    DRAFT,
    ACCEPT,
    RESIDUAL,
    GUMBEL,
    /** Random remasking in masked diffusion: the score that orders a canvas's masked positions. */
    REMASK
}
