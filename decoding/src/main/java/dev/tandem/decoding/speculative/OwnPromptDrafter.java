package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.Tasks;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;

/**
 * A draft model that reads a prompt of its own instead of the target's (RAPID's drafter: retrieved passages and the
 * question, where the target reads the whole context). Its sequence is that prompt followed by the tokens generated
 * so far, which both models share: each round it rewrites the target's context {@code prompt_target + generated} as
 * {@code prompt_own + generated} and drafts after it with a {@link DrafterModel}, whose positions (its RNG keys and its
 * repetition-penalty context) are then its own sequence's.
 */
final class OwnPromptDrafter implements Drafter {
    private final DrafterModel drafter;
    private final int[] prompt;
    private final int targetPromptLength;
    private int[] own; // prompt, the generated tokens, room for the draft

    /**
     * @param drafter            drafts after the drafter's own context
     * @param prompt             the drafter's prompt (checked by the caller)
     * @param targetPromptLength the target's prompt length: the target's context from there on is the generated tokens
     */
    OwnPromptDrafter(DrafterModel drafter, int[] prompt, int targetPromptLength) {
        this.drafter = drafter;
        this.prompt = prompt.clone();
        this.targetPromptLength = targetPromptLength;
        this.own = this.prompt.clone();
    }

    @Override
    public LanguageModel model() {
        return drafter.model();
    }

    @Override
    public void start(DecodingTask.KvSource kv) {
        drafter.start(kv);
    }

    @Override
    public void begin(int[] context, int length, int maxTokens, GenerationRequest request, DecodeStats.Recorder stats) {
        int generated = length - targetPromptLength;
        if (generated < 0) {
            throw new IllegalStateException("a context of " + length + " tokens is shorter than the target's prompt of "
                    + targetPromptLength);
        }
        int ownLength = prompt.length + generated;
        if (own.length < ownLength + maxTokens) {
            own = Arrays.copyOf(own, Math.max(ownLength + maxTokens, 2 * own.length));
        }
        System.arraycopy(context, targetPromptLength, own, prompt.length, generated);
        drafter.begin(own, ownLength, maxTokens, request, stats);
    }

    @Override
    public boolean complete() {
        return drafter.complete();
    }

    @Override
    public Batch.Entry next(DecodingTask.PrefillBudget prefill) {
        return drafter.next(prefill);
    }

    @Override
    public void advance(ForwardResult result) {
        drafter.advance(result);
    }

    @Override
    public Draft draft() {
        return drafter.draft();
    }

    @Override
    public int room(int length) {
        return drafter.room(length - targetPromptLength + prompt.length);
    }

    @Override
    public int blocksNeeded(int promptLength, int maxTokens, int extraRows) {
        return Tasks.blocks(model(), prompt.length, maxTokens, extraRows);
    }

    @Override
    public void close() {
        drafter.close();
    }
}
