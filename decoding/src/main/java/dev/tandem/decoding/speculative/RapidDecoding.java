package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.SharedVocabulary;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.config.ModelConfig;

import java.util.Objects;
import java.util.function.Consumer;

/**
 * Retrieval-augmented speculative decoding (RAPID; Chen et al. 2025, "Long-Context Inference with Retrieval-Augmented
 * Speculative Decoding", arXiv 2502.20330): the drafter reads only passages retrieved from a long context (and the
 * question), the target reads the whole context, and the drafter may be the target itself (its own KV sequence) or a
 * larger model, since its context is short. Rounds are speculative decoding's ({@link ChainTask}): the drafter proposes
 * γ tokens after its prompt and the generated tokens, the target scores them after its prompt and the same tokens, and
 * {@link ChainVerifier#sampleNudged} judges them against the target's distribution nudged toward the drafter's,
 * p̂ = softmax(log p − η·m·(p − q)). η = 0 is exact speculative sampling, so the output follows the target's
 * distribution whatever the drafter read; η &gt; 0 lets a drafter that read the right passages pull the output toward
 * itself. Greedy requests accept a draft token only where it is the target's own argmax (η plays no part), so greedy
 * RAPID is greedy decoding of the target on the whole context, token for token.
 *
 * <p>The drafter's prompt comes with each request ({@link #task(GenerationRequest, int[])}, or
 * {@link #withDrafterPrompt} for {@code Engine.submit}); without one the drafter reads the target's prompt.
 */
public final class RapidDecoding implements DecodingStrategy {
    private final LanguageModel target;
    private final LanguageModel drafter;
    private final int draftLength;
    private final double eta;
    private final int[] drafterPrompt; // null: the request's own prompt

    /**
     * @param target      the model whose output counts; it reads the request's prompt (the whole context and the question)
     * @param drafter     the model that drafts from its own, shorter prompt: the target itself (the same object; it then
     *                    keeps a second sequence in the target's cache) or another model with the target's tokenizer
     * @param draftLength γ, at least 1
     * @param eta         η, a finite number ≥ 0: how far the target's distribution is nudged toward the drafter's
     * @throws TandemException if the drafter's vocabulary differs from the target's
     */
    public RapidDecoding(LanguageModel target, LanguageModel drafter, int draftLength, double eta) {
        if (draftLength < 1) {
            throw new IllegalArgumentException("the draft length must be at least 1, but was " + draftLength + ".");
        }
        ChainVerifier.requireEta(eta);
        this.target = Objects.requireNonNull(target, "target");
        this.drafter = Objects.requireNonNull(drafter, "drafter");
        if (drafter != target) {
            SharedVocabulary.require(target, "target", drafter, "drafter", "RAPID's drafter must share the target's tokenizer");
        }
        this.draftLength = draftLength;
        this.eta = eta;
        this.drafterPrompt = null;
    }

    /** {@code method} with the drafter reading {@code drafterPrompt}. */
    private RapidDecoding(RapidDecoding method, int[] drafterPrompt) {
        this.target = method.target;
        this.drafter = method.drafter;
        this.draftLength = method.draftLength;
        this.eta = method.eta;
        this.drafterPrompt = checkedDrafterPrompt(drafter, drafterPrompt);
    }

    @Override
    public String name() {
        return "rapid";
    }

    public int draftLength() {
        return draftLength;
    }

    public double eta() {
        return eta;
    }

    /**
     * This method with the drafter reading {@code drafterPromptIds} (the retrieved passages and the question, as the
     * drafter's token ids) for every request it is given: one request's strategy, for {@code Engine.submit}.
     *
     * @throws TandemException if the ids are empty, longer than the drafter's context or outside its vocabulary
     */
    public RapidDecoding withDrafterPrompt(int[] drafterPromptIds) {
        return new RapidDecoding(this, Objects.requireNonNull(drafterPromptIds, "drafterPromptIds"));
    }

    /** {@code request} decoded with the drafter reading {@code drafterPromptIds}; see {@link #withDrafterPrompt}. */
    public DecodingTask task(GenerationRequest request, int[] drafterPromptIds) {
        return withDrafterPrompt(drafterPromptIds).task(request);
    }

    /** {@link #task(GenerationRequest, int[])} stepped alone to the end. */
    public GenerationResult generate(GenerationRequest request, int[] drafterPromptIds) {
        return withDrafterPrompt(drafterPromptIds).generate(request);
    }

    /** {@link #task(GenerationRequest, int[])} stepped alone to the end, {@code listener} seeing each token. */
    public GenerationResult generate(GenerationRequest request, int[] drafterPromptIds, Consumer<TokenEvent> listener) {
        return withDrafterPrompt(drafterPromptIds).generate(request, listener);
    }

    /** {@code request} decoded with the drafter reading this strategy's drafter prompt, or the request's own prompt. */
    @Override
    public DecodingTask task(GenerationRequest request) {
        int[] targetPrompt = new Generator(target).promptIds(request);
        int[] own = drafterPrompt != null ? drafterPrompt : checkedDrafterPrompt(drafter, targetPrompt);
        Drafter d = new OwnPromptDrafter(new DrafterModel(drafter, 0), own, targetPrompt.length);
        return new ChainTask(name(), target, d, draftLength, request, ChainVerifier.SampledRule.nudged(eta));
    }

    /** A copy of {@code ids} checked as the drafter's prompt. */
    private static int[] checkedDrafterPrompt(LanguageModel drafter, int[] ids) {
        if (ids.length == 0) {
            throw new TandemException("the drafter's prompt is empty; RAPID's drafter reads the retrieved passages and the "
                    + "question, so give it at least one token.");
        }
        ModelConfig config = drafter.config();
        if (ids.length > config.maxContext()) {
            throw new TandemException("the drafter's prompt has " + ids.length + " tokens, more than the drafter's context of "
                    + config.maxContext() + " tokens (" + config.maxContextSource() + "); retrieve fewer passages.");
        }
        for (int id : ids) {
            if (id < 0 || id >= config.vocabSize()) {
                throw new TandemException("token id " + id + " of the drafter's prompt is outside the vocabulary of "
                        + config.vocabSize() + " (config.json vocab_size).");
            }
        }
        return ids.clone();
    }
}
