package dev.tandem.decoding.rag;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.config.ModelConfig;

import java.util.List;
import java.util.Objects;

/**
 * Retrieval-augmented generation with block-sparse attention over cached passages ({@code --method rag}): the
 * request's prompt is the question; a {@link Retriever} picks the passages; each passage's KV is computed once,
 * after the system prefix only (the tokens the tokenizer puts before any text, such as BOS), and kept in a
 * {@link PassageCache} keyed by content; the question and the answer attend to the prefix and to every attached
 * passage. Passages do not attend to each other, so a question over cached passages costs the prefill of the
 * question alone, whatever the passages' length. Positions: every passage starts right after the prefix (at
 * {@code p0}), the question after the longest passage. See {@link RagTask} for the exact equivalence with a
 * one-pass segment prefill.
 */
public final class RagDecoding implements DecodingStrategy {
    private final LanguageModel model;
    private final PassageCache cache;
    private final Retriever retriever;
    private final int[] systemPrefix;

    /** Passages from {@code retriever}, their KV cached in {@code cache} (of {@code model}). */
    public RagDecoding(LanguageModel model, PassageCache cache, Retriever retriever) {
        this(model, cache, retriever, new int[0]);
    }

    private RagDecoding(LanguageModel model, PassageCache cache, Retriever retriever, int[] systemPrefix) {
        this.model = Objects.requireNonNull(model, "model");
        this.cache = Objects.requireNonNull(cache, "cache");
        this.retriever = Objects.requireNonNull(retriever, "retriever");
        this.systemPrefix = systemPrefix.clone();
        if (cache.model() != model) {
            throw new IllegalArgumentException("the passage cache belongs to another model");
        }
        if (!model.config().isCausal()) {
            throw new TandemException("--method rag needs a causal decoder; " + model.config().modelType()
                    + " attends both ways (config.json is_causal false).");
        }
    }

    /**
     * This strategy with {@code ids} (an instruction, say) after the tokenizer's own prefix and before the passages:
     * every passage sees it and is computed after it, so it is part of a passage's cache key.
     */
    public RagDecoding withSystemPrefix(int[] ids) {
        return new RagDecoding(model, cache, retriever, ids);
    }

    @Override
    public String name() {
        return "rag";
    }

    public PassageCache cache() {
        return cache;
    }

    /** The question is the request's prompt (text, or ids decoded to text for the retriever). */
    @Override
    public DecodingTask task(GenerationRequest request) {
        return task(request, retriever.passages(RagPrompt.questionText(model, request)));
    }

    /**
     * {@code request} over the given passages (token ids of the model's vocabulary, without special tokens), in the
     * order given.
     *
     * @throws TandemException when a passage, or all of them with the question, do not fit the model's context
     */
    public DecodingTask task(GenerationRequest request, List<int[]> passages) {
        RagPrompt prompt = RagPrompt.of(model, request, systemPrefix, name());
        int[] prefix = prompt.prefix();
        int[] question = prompt.question();
        int p0 = prefix.length;
        ModelConfig config = model.config();
        int context = config.maxContext();
        long total = p0 + question.length;
        for (int i = 0; i < passages.size(); i++) {
            int[] p = passages.get(i);
            RagPrompt.checkPassage(config, i, p);
            if (p0 + p.length + question.length >= context) {
                throw new TandemException("passage " + (i + 1) + " has " + p.length + " tokens: with the " + p0
                        + "-token prefix and the " + question.length + "-token question it does not fit the model's context of "
                        + context + " tokens (" + config.maxContextSource() + ").");
            }
            total += p.length;
        }
        if (total >= context) {
            throw new TandemException(passages.size() + " passages with the prefix and the question hold " + total
                    + " tokens, more than fit the model's context of " + context + " tokens (" + config.maxContextSource()
                    + ") with room for an answer; retrieve fewer passages (--passages-k) or shorter ones.");
        }
        return new RagTask(model, cache, request, prefix, passages, question, Generator.eosTokenIds(model, request));
    }
}
