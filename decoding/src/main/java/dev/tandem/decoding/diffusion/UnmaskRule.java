package dev.tandem.decoding.diffusion;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * Which masked positions of a canvas a diffusion step commits: each rule scores the masked positions of the
 * current block from their logits, and the step commits the highest scores (ties to the lowest position), each
 * with its most likely token.
 */
public enum UnmaskRule {
    /** LLaDA's low-confidence remasking: the score is the top softmax probability (the confidence). */
    LOW_CONFIDENCE("low-confidence"),
    /** LLaDA's random remasking: a uniform draw per position and step (counter-based, purpose REMASK). */
    RANDOM("random"),
    /** Dream's entropy order: the score is minus the softmax entropy (the most peaked first). */
    ENTROPY("entropy"),
    /** Dream's margin order: the score is the top probability minus the second's. */
    MARGIN("margin"),
    /**
     * Fast-dLLM's confidence threshold: every masked position of the block whose confidence exceeds τ, at least the
     * most confident one; as many steps as the block needs ({@code --steps} does not apply).
     */
    THRESHOLD("threshold"),
    /**
     * Coherent contextual decoding (Chen et al. 2025) with its adaptive budget: a masked position is consistent when
     * its most likely token stayed the same, and it stayed among the block's V most confident positions (by minus
     * entropy, V = 5u for a step of u), over the last W passes ({@code --ccd-window}); a step commits every consistent
     * position (up to V), and falls back to the u most confident when fewer than u are consistent.
     */
    CCD("ccd");

    private final String wireName;

    UnmaskRule(String wireName) {
        this.wireName = wireName;
    }

    /** The name {@code --unmask} takes. */
    public String wireName() {
        return wireName;
    }

    /** The rule named {@code name} ({@link #wireName}), or an exception listing the names. */
    public static UnmaskRule of(String name) {
        for (UnmaskRule r : values()) {
            if (r.wireName.equals(name.toLowerCase(Locale.ROOT))) {
                return r;
            }
        }
        throw new IllegalArgumentException("--unmask must be one of " + names() + ", but was \"" + name + "\".");
    }

    /** Every rule's name, comma-separated. */
    public static String names() {
        return Arrays.stream(values()).map(UnmaskRule::wireName).collect(Collectors.joining(", "));
    }
}
