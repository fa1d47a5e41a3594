package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

/**
 * Grows a round's token tree for {@link TreeTask}: a draft model's top-k ({@link TreeDrafter}), or ADED's
 * search over a trigram table ({@link AdedDrafter}). Like a {@link Drafter}, a source lives for one
 * generation: each round {@link #begin} starts a tree below the whole context so far (which extends the
 * previous round's context by the tokens accepted since); a source with a {@link #model()} then asks for
 * passes of it, one at a time, in the step protocol ({@link #next}, {@link #advance}) until
 * {@link #complete()}; {@link #tree()} is the tree. {@link #close} frees what it holds.
 */
interface TreeSource extends AutoCloseable {

    /** The model this source runs passes on, or null when it needs none (its tree is complete at once). */
    LanguageModel model();

    /** Takes the source's KV sequence from {@code kv} (a source without a model takes none); before the first round. */
    void start(DecodingTask.KvSource kv);

    /** The deepest tree this source can grow after a context of {@code length} tokens. */
    int room(int length);

    /**
     * Starts a tree below {@code context[0, length)}, at most {@code maxDepth} deep with at most
     * {@code maxNodes} nodes (both ≥ 1); {@code context} may be longer (scratch space).
     */
    void begin(int[] context, int length, int maxDepth, int maxNodes, SamplingParams sp, DecodeStats.Recorder stats);

    /** Whether the tree begun last is complete ({@link #tree()} may be read). */
    boolean complete();

    /**
     * The entry the source adds to the next pass of its model, or null when it has none for this pass (its
     * tree is complete, or {@code prefill} granted none of the prompt rows it must feed first).
     */
    Batch.Entry next(DecodingTask.PrefillBudget prefill);

    /** The result of the entry {@link #next} returned (entry 0 of {@code result}). */
    void advance(ForwardResult result);

    /** The tree, once {@link #complete()}. */
    TokenTree tree();

    /** A whole tree at once, running the source's passes itself (outside any step). */
    default TokenTree grow(int[] context, int length, int maxDepth, int maxNodes, SamplingParams sp,
                           DecodeStats.Recorder stats) {
        begin(context, length, maxDepth, maxNodes, sp, stats);
        while (!complete()) {
            Batch.Entry entry = next(DecodingTask.PrefillBudget.unlimited());
            if (entry == null) {
                throw new IllegalStateException("an unlimited budget left the tree incomplete");
            }
            advance(model().forward(Batch.of(entry)));
        }
        return tree();
    }

    @Override
    void close();
}
