package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;

/**
 * Prompt-lookup drafting: for n = maxNgram down to 1, finds the most recent earlier occurrence of the
 * context's last n tokens and proposes the tokens that followed it. Deterministic (no q), no model.
 */
final class DrafterPromptLookup implements Drafter {
    private final int maxNgram;
    private Draft draft = Draft.EMPTY;

    DrafterPromptLookup(int maxNgram) {
        this.maxNgram = maxNgram;
    }

    @Override
    public int room(int length) {
        return Integer.MAX_VALUE;
    }

    @Override
    public LanguageModel model() {
        return null;
    }

    @Override
    public void start(DecodingTask.KvSource kv) {
    }

    @Override
    public void begin(int[] context, int length, int maxTokens, GenerationRequest request, DecodeStats.Recorder stats) {
        int[] found = lookup(context, length, maxNgram, maxTokens);
        draft = found.length == 0 ? Draft.EMPTY : new Draft(found, null);
    }

    @Override
    public boolean complete() {
        return true;
    }

    @Override
    public Batch.Entry next(DecodingTask.PrefillBudget prefill) {
        return null;
    }

    @Override
    public void advance(ForwardResult result) {
        throw new IllegalStateException("prompt lookup runs no passes");
    }

    @Override
    public Draft draft() {
        return draft;
    }

    /**
     * The up to {@code maxTokens} tokens after the most recent earlier occurrence of the longest suffix
     * n-gram (n ≤ maxNgram) of {@code context[0, length)}; empty when no suffix recurs.
     */
    static int[] lookup(int[] context, int length, int maxNgram, int maxTokens) {
        for (int n = Math.min(maxNgram, length - 1); n >= 1; n--) {
            int suffix = length - n;
            // An occurrence starting at j needs j + n < length so that at least one token follows it.
            for (int j = length - n - 1; j >= 0; j--) {
                if (matches(context, j, suffix, n)) {
                    int from = j + n;
                    return Arrays.copyOfRange(context, from, Math.min(length, from + maxTokens));
                }
            }
        }
        return new int[0];
    }

    private static boolean matches(int[] context, int a, int b, int n) {
        for (int i = 0; i < n; i++) {
            if (context[a + i] != context[b + i]) {
                return false;
            }
        }
        return true;
    }

    @Override
    public void close() {
    }
}
