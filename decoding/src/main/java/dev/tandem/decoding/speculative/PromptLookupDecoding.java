package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.transformer.LanguageModel;

import java.util.function.Consumer;

/**
 * N-gram / prompt-lookup speculative decoding ({@code ngram}): no second model; the draft is the
 * continuation of the most recent earlier occurrence of the longest suffix n-gram (n = maxNgram..1) of
 * the prompt and output so far, verified by {@link ChainVerifier} as a deterministic draft (q = null
 * when sampling). Greedy output is bit-identical to plain greedy decoding of the target.
 */
public final class PromptLookupDecoding implements DecodingStrategy {
    public static final int DEFAULT_MAX_NGRAM = 3;
    public static final int DEFAULT_DRAFT_LENGTH = 8;

    private final LanguageModel target;
    private final int maxNgram;
    private final int draftLength;

    public PromptLookupDecoding(LanguageModel target, int maxNgram, int draftLength) {
        if (maxNgram < 1) {
            throw new IllegalArgumentException("the longest n-gram must be at least 1, but was " + maxNgram + ".");
        }
        if (draftLength < 1) {
            throw new IllegalArgumentException("the draft length must be at least 1, but was " + draftLength + ".");
        }
        this.target = target;
        this.maxNgram = maxNgram;
        this.draftLength = draftLength;
    }

    /** Longest n-gram {@value #DEFAULT_MAX_NGRAM}, drafts of up to {@value #DEFAULT_DRAFT_LENGTH} tokens. */
    public PromptLookupDecoding(LanguageModel target) {
        this(target, DEFAULT_MAX_NGRAM, DEFAULT_DRAFT_LENGTH);
    }

    @Override
    public String name() {
        return "ngram";
    }

    @Override
    public DecodingTask task(GenerationRequest request) {
        return new ChainTask(name(), target, new DrafterPromptLookup(maxNgram), draftLength, request);
    }
}
