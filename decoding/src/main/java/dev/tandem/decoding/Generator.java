package dev.tandem.decoding;

import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;

import java.util.List;
import java.util.function.Consumer;

/**
 * Greedy and sampled decoding of one model. {@link #stream} returns a {@link Generation} that computes
 * one token per {@code next()}; {@link #generate} drains one, optionally calling a listener per token.
 */
public final class Generator implements DecodingStrategy {
    private final LanguageModel model;

    public Generator(LanguageModel model) {
        this.model = model;
    }

    /** {@code plain}: one target forward pass per token. */
    @Override
    public String name() {
        return "plain";
    }

    public LanguageModel model() {
        return model;
    }

    /**
     * Starts a generation; the prompt is prefilled on the first {@code hasNext()}/{@code next()}. A text
     * prompt is encoded with the special tokens the tokenizer's post-processor adds (such as the BOS of
     * SentencePiece models), as Hugging Face's {@code tokenizer(prompt)} does; ids are used as given.
     */
    public Generation stream(GenerationRequest request) {
        return new Generation(model, request, promptIds(model, request), eosTokens(model, request));
    }

    /**
     * The prompt's token ids as {@link #stream} (and {@link Engine#submit}) runs them: the text encoded
     * with the tokenizer's special tokens, or the ids as given; the BOS token when empty.
     *
     * @throws TandemException if the prompt is longer than the context, has an id outside the
     *                         vocabulary, or is empty and the model has no BOS token
     */
    public int[] promptIds(GenerationRequest request) {
        return promptIds(model, request);
    }

    /**
     * The prompt's token ids as {@link #stream} uses them (encoded, BOS when empty), checked against the
     * context and the vocabulary.
     */
    static int[] promptIds(LanguageModel model, GenerationRequest request) {
        int[] promptIds = request.promptIds() != null
                ? request.promptIds()
                : model.tokenizer().withSpecialTokens(model.tokenizer().encode(request.prompt()));
        if (promptIds.length == 0) {
            Integer bos = model.config().bosTokenId();
            if (bos == null) {
                throw new TandemException("the prompt is empty and the model has no BOS token (config.json bos_token_id) to start from.");
            }
            promptIds = new int[] {bos};
        }
        ModelConfig config = model.config();
        if (promptIds.length > config.maxContext()) {
            throw new TandemException("the prompt has " + promptIds.length + " tokens, more than the model's context of "
                    + config.maxContext() + " tokens (" + config.maxContextSource() + ").");
        }
        for (int id : promptIds) {
            if (id < 0 || id >= config.vocabSize()) {
                throw new TandemException("prompt token id " + id + " is outside the vocabulary of "
                        + config.vocabSize() + " (config.json vocab_size).");
            }
        }
        return promptIds;
    }

    /** Plain decoding of {@code request} as a {@link DecodingTask} (what {@link #generate} and {@link Engine} run). */
    @Override
    public DecodingTask task(GenerationRequest request) {
        return new PlainTask(model, request);
    }

    /** The ids that end {@code request}: its own, else generation_config.json's, else config.json's. */
    public static int[] eosTokenIds(LanguageModel model, GenerationRequest request) {
        return eosTokens(model, request);
    }

    static int[] eosTokens(LanguageModel model, GenerationRequest request) {
        List<Integer> ids = request.eosTokenIds();
        if (ids == null) {
            GenerationConfig gc = model.generationConfig();
            ids = gc.eosTokenIds() != null && !gc.eosTokenIds().isEmpty() ? gc.eosTokenIds() : model.config().eosTokenIds();
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }
}
