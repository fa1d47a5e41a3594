package dev.tandem.decoding.diffusion;

import java.util.Locale;

/**
 * What a diffusion step may reuse from the block's first pass (Fast-dLLM's approximate caches). In a
 * bidirectional model every position's keys and values above the first layer change when any token is committed,
 * so a cache trades exactness for passes over fewer rows; each is refreshed by a full pass at the start of every
 * block, whose logits that step also commits from.
 */
public enum DiffusionCache {
    /** Every step recomputes the whole sequence: exact. */
    NONE,
    /** The keys and values before the current block are reused; a step recomputes the block and everything after it. */
    PREFIX,
    /** Those before and after the current block are reused; a step recomputes the block's positions alone. */
    DUAL;

    /** The name {@code --cache} takes. */
    public String wireName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The cache named {@code name}, or an exception listing the names. */
    public static DiffusionCache of(String name) {
        for (DiffusionCache c : values()) {
            if (c.wireName().equals(name.toLowerCase(Locale.ROOT))) {
                return c;
            }
        }
        throw new IllegalArgumentException("--cache must be one of none, prefix, dual, but was \"" + name + "\".");
    }
}
