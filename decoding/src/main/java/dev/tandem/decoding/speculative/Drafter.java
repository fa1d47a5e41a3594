package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.Tasks;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

/**
 * Proposes draft tokens for one generation, to be verified by the target with {@link ChainVerifier}.
 * A drafter lives for one generation. Each round {@link #begin} starts a proposal after the whole context
 * so far (prompt and accepted tokens), which always extends the context of the previous round by the
 * tokens accepted since; a drafter with a {@link #model()} then asks for passes of it, one at a time, in
 * the step protocol ({@link #next}, {@link #advance}) until {@link #complete()}; {@link #draft()} is the
 * proposal. {@link #close} frees what it holds.
 */
interface Drafter extends AutoCloseable {

    /** The model this drafter runs passes on, or null when it needs none (its proposal is complete at once). */
    LanguageModel model();

    /** Takes the drafter's KV sequence from {@code kv} (a drafter without a model takes none); before the first round. */
    void start(DecodingTask.KvSource kv);

    /**
     * Starts proposing up to {@code maxTokens} (≥ 1) tokens to follow {@code context[0, length)}
     * ({@code context} may be longer; entries after {@code length} are scratch space the drafter may
     * write its draft into). May end with fewer, even none.
     */
    void begin(int[] context, int length, int maxTokens, GenerationRequest request, DecodeStats.Recorder stats);

    /** Whether the proposal begun last is complete ({@link #draft()} may be read). */
    boolean complete();

    /**
     * The entry the drafter adds to the next pass of its model, or null when it has none for this pass
     * (its proposal is complete, or {@code prefill} granted none of the prompt rows it must feed first).
     */
    Batch.Entry next(DecodingTask.PrefillBudget prefill);

    /** The result of the entry {@link #next} returned (entry 0 of {@code result}). */
    void advance(ForwardResult result);

    /** The proposal, once {@link #complete()}. */
    Draft draft();

    /** The most draft tokens this drafter can propose after a context of {@code length} tokens. */
    int room(int length);

    /**
     * KV blocks of {@link #model()} this drafter's sequence may hold for a request whose target prompt has
     * {@code promptLength} tokens ({@link Tasks#blocks} with {@code maxTokens} and {@code extraRows}): by default a
     * sequence as long as the target's, for a drafter that reads the target's context.
     */
    default int blocksNeeded(int promptLength, int maxTokens, int extraRows) {
        return Tasks.blocks(model(), promptLength, maxTokens, extraRows);
    }

    /** A whole proposal at once, running the drafter's passes itself (outside any step). */
    default Draft propose(int[] context, int length, int maxTokens, GenerationRequest request, DecodeStats.Recorder stats) {
        begin(context, length, maxTokens, request, stats);
        while (!complete()) {
            Batch.Entry entry = next(DecodingTask.PrefillBudget.unlimited());
            if (entry == null) {
                throw new IllegalStateException("an unlimited budget left the draft incomplete");
            }
            advance(model().forward(Batch.of(entry)));
        }
        return draft();
    }

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
