package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.GenerationRequest;

/**
 * Proposes draft tokens for one generation, to be verified by the target with {@link ChainVerifier}.
 * A drafter lives for one generation: {@link #propose} is called once per round with the whole context
 * so far (prompt and accepted tokens), which always extends the context of the previous call by the
 * tokens accepted since; {@link #close} frees what it holds.
 */
interface Drafter extends AutoCloseable {

    /**
     * Up to {@code maxTokens} (≥ 1) tokens to follow {@code context[0, length)} ({@code context} may be
     * longer; entries after {@code length} are scratch space the drafter may write its draft into).
     * May return fewer, even none.
     */
    Draft propose(int[] context, int length, int maxTokens, GenerationRequest request, DecodeStats.Recorder stats);

    /** The most draft tokens this drafter can propose after a context of {@code length} tokens. */
    int room(int length);

    @Override
    void close();

    /**
     * A proposed chain.
     *
     * @param tokens the draft tokens
     * @param q      for each token, the distribution it was drawn from (indexed by token id), or null
     *               when the drafter is deterministic
     */
    record Draft(int[] tokens, double[][] q) {
        static final Draft EMPTY = new Draft(new int[0], null);
    }
}
