package dev.tandem.decoding;

import dev.tandem.transformer.LanguageModel;

/** What every {@link DecodingTask} needs to size itself. */
public final class Tasks {
    private Tasks() {
    }

    /**
     * KV blocks of {@code model} a request holds at most: its prompt, its max tokens (together capped at
     * the context, or the prompt if longer) and {@code extraRows} rows a round appends before rolling back
     * (drafts, tree nodes, Jacobi windows).
     */
    public static int blocks(LanguageModel model, int promptLength, int maxTokens, int extraRows) {
        int maxContext = model.config().maxContext();
        long tokens = Math.min((long) promptLength + maxTokens, Math.max(maxContext, promptLength)) + extraRows;
        return model.kvCache().blocksNeeded((int) Math.min(Integer.MAX_VALUE, tokens));
    }
}
