package dev.tandem.runtime;

/** How rotary embeddings pair the dimensions of a head. */
public enum RopeLayout {
    /** Hugging Face Llama: dimension i is paired with i + d/2 ("rotate half"). */
    ROTATE_HALF,
    /** GPT-J / Meta's original Llama: dimension 2i is paired with 2i + 1. */
    INTERLEAVED
}
