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

    /**
     * Plain decoding of {@code request} after a prompt given as rows, each one position: row i is the vector
     * {@code vectors[i]} (of the model's hidden size, fed to the first layer as its input embedding) where that is
     * non-null, else the token {@code ids[i]}; {@code vectors} may be null (every row a token: then this equals
     * {@link #task(GenerationRequest)} of a request with those ids). The request's own prompt is not read; its
     * sampling, stops, EOS ids and limits are. A vector row is no token, so the request's context (what the
     * repetition penalty reads) holds the prompt's first token row there: a token the context holds anyway, and the
     * penalty counts each distinct token once, so it sees exactly the token rows. What the result reports as its
     * prompt ids is that context; usage counts rows.
     *
     * @throws TandemException if the rows do not fit the context, a token row is outside the vocabulary, or no row is a token
     */
    public DecodingTask task(GenerationRequest request, int[] ids, float[][] vectors) {
        ModelConfig config = model.config();
        if (ids.length == 0) {
            throw new IllegalArgumentException("a prompt needs at least one row");
        }
        if (vectors != null && vectors.length != ids.length) {
            throw new IllegalArgumentException(ids.length + " prompt ids but " + vectors.length + " vector slots: one of each per row");
        }
        if (ids.length > config.maxContext()) {
            throw new TandemException("the prompt has " + ids.length + " rows, more than the model's context of "
                    + config.maxContext() + " tokens (" + config.maxContextSource() + ").");
        }
        int[] context = ids.clone();
        float[][] rows = null;
        int firstToken = -1;
        for (int i = 0; i < ids.length; i++) {
            if (vectors != null && vectors[i] != null) {
                if (vectors[i].length != config.hiddenSize()) {
                    throw new IllegalArgumentException("prompt row " + i + " is a vector of width " + vectors[i].length
                            + ", not the model's hidden size " + config.hiddenSize());
                }
                if (rows == null) {
                    rows = new float[ids.length][];
                }
                rows[i] = vectors[i].clone();
            } else {
                if (ids[i] < 0 || ids[i] >= config.vocabSize()) {
                    throw new TandemException("prompt token id " + ids[i] + " is outside the vocabulary of "
                            + config.vocabSize() + " (config.json vocab_size).");
                }
                if (firstToken < 0) {
                    firstToken = ids[i];
                }
            }
        }
        if (firstToken < 0) {
            throw new TandemException("the prompt has no token row, only vectors; give it at least one token (a question, say).");
        }
        if (rows != null) {
            for (int i = 0; i < ids.length; i++) {
                if (rows[i] != null) {
                    context[i] = firstToken;
                }
            }
        }
        return new PlainTask(model, request, context, rows);
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
