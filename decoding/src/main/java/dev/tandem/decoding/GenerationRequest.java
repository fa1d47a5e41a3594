package dev.tandem.decoding;

import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.config.GenerationConfig;

import java.util.List;
import java.util.Objects;

/**
 * What to generate. Build with {@link #of(String)} or {@link #ofIds(int[])} and the {@code with…}
 * methods.
 *
 * @param prompt      the prompt text (null when {@code promptIds} is given)
 * @param promptIds   the prompt as token ids (null when {@code prompt} is given)
 * @param maxTokens   the most tokens to generate (≥ 1)
 * @param sampling    how each token is chosen
 * @param stop        strings that end generation when the text reaches them (cut from the text)
 * @param eosTokenIds tokens that end generation; null means the model's (generation_config.json,
 *                    else config.json); empty means never stop on a token
 * @param logprobs    0 for none; n ≥ 1 records each token's log-probability and the n most likely
 * @param streamId    the RNG stream of this request, so that its draws never depend on what else runs
 */
public record GenerationRequest(String prompt, int[] promptIds, int maxTokens, SamplingParams sampling,
                                List<String> stop, List<Integer> eosTokenIds, int logprobs, long streamId) {

    public static final int DEFAULT_MAX_TOKENS = 128;

    public GenerationRequest {
        if ((prompt == null) == (promptIds == null)) {
            throw new IllegalArgumentException("give either a prompt text or prompt ids");
        }
        if (maxTokens < 1) {
            throw new IllegalArgumentException("max tokens must be at least 1, but was " + maxTokens + ".");
        }
        Objects.requireNonNull(sampling, "sampling");
        stop = List.copyOf(stop);
        for (String s : stop) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("a stop string must not be empty.");
            }
        }
        eosTokenIds = eosTokenIds == null ? null : List.copyOf(eosTokenIds);
        if (logprobs < 0 || logprobs > 20) {
            throw new IllegalArgumentException("logprobs must be between 0 and 20, but was " + logprobs + ".");
        }
        promptIds = promptIds == null ? null : promptIds.clone();
    }

    /** Greedy, {@value #DEFAULT_MAX_TOKENS} tokens, the model's EOS tokens, no stop strings, no logprobs. */
    public static GenerationRequest of(String prompt) {
        return new GenerationRequest(prompt, null, DEFAULT_MAX_TOKENS, SamplingParams.greedy(), List.of(), null, 0, 0);
    }

    /**
     * A request with the model author's defaults from {@code generation_config.json}, as Hugging Face
     * reads them: sampling only when {@code do_sample} is true (then its temperature, top-k, top-p and
     * min-p, each off when absent), the repetition penalty always, {@code max_new_tokens} as the limit
     * (else {@value #DEFAULT_MAX_TOKENS}); EOS tokens are always the model's unless overridden.
     */
    public static GenerationRequest withModelDefaults(LanguageModel model, String prompt, long seed) {
        GenerationConfig gc = model.generationConfig();
        boolean sample = Boolean.TRUE.equals(gc.doSample());
        SamplingParams sampling = new SamplingParams(
                sample ? orElse(gc.temperature(), 1f) : 0f,
                sample ? orElse(gc.topK(), 0) : 0,
                sample ? orElse(gc.topP(), 1f) : 1f,
                sample ? orElse(gc.minP(), 0f) : 0f,
                orElse(gc.repetitionPenalty(), 1f),
                seed);
        return of(prompt).withSampling(sampling).withMaxTokens(orElse(gc.maxNewTokens(), DEFAULT_MAX_TOKENS));
    }

    private static <T> T orElse(T value, T fallback) {
        return value != null ? value : fallback;
    }

    public static GenerationRequest ofIds(int... promptIds) {
        return new GenerationRequest(null, promptIds, DEFAULT_MAX_TOKENS, SamplingParams.greedy(), List.of(), null, 0, 0);
    }

    public GenerationRequest withMaxTokens(int maxTokens) {
        return new GenerationRequest(prompt, promptIds, maxTokens, sampling, stop, eosTokenIds, logprobs, streamId);
    }

    public GenerationRequest withSampling(SamplingParams sampling) {
        return new GenerationRequest(prompt, promptIds, maxTokens, sampling, stop, eosTokenIds, logprobs, streamId);
    }

    public GenerationRequest withStop(List<String> stop) {
        return new GenerationRequest(prompt, promptIds, maxTokens, sampling, stop, eosTokenIds, logprobs, streamId);
    }

    public GenerationRequest withEosTokenIds(List<Integer> eosTokenIds) {
        return new GenerationRequest(prompt, promptIds, maxTokens, sampling, stop, eosTokenIds, logprobs, streamId);
    }

    public GenerationRequest withLogprobs(int logprobs) {
        return new GenerationRequest(prompt, promptIds, maxTokens, sampling, stop, eosTokenIds, logprobs, streamId);
    }

    public GenerationRequest withStreamId(long streamId) {
        return new GenerationRequest(prompt, promptIds, maxTokens, sampling, stop, eosTokenIds, logprobs, streamId);
    }
}
