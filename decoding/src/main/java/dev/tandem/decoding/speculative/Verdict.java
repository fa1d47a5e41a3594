package dev.tandem.decoding.speculative;

/**
 * The outcome of verifying one drafted chain.
 *
 * @param accepted leading draft tokens kept, in {@code [0, draft.length]}
 * @param next the target's token after them: the correction at the first rejection, or the bonus token
 *     when every draft token was accepted
 */
public record Verdict(int accepted, int next) {

    public Verdict {
        if (accepted < 0) {
            throw new IllegalArgumentException("accepted must be >= 0, but was " + accepted + ".");
        }
        if (next < 0) {
            throw new IllegalArgumentException("next must be a token id >= 0, but was " + next + ".");
        }
    }
}
