package dev.tandem.decoding.rag;

import dev.tandem.decoding.Generator;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.config.ModelConfig;

import java.util.Arrays;

/**
 * A retrieval request's prompt as the RAG methods ({@link RagDecoding}, {@link RefragDecoding}) read it: the system
 * prefix — what the tokenizer puts before any text (such as BOS), then the method's own instruction ids — which every
 * passage follows, and the question, the rest of the prompt, which follows the passages.
 */
record RagPrompt(int[] prefix, int[] question) {

    /**
     * {@code request}'s prompt split around the passages, {@code systemPrefix} after the tokenizer's own tokens.
     *
     * @throws TandemException if a system prefix id is outside the vocabulary or the question is empty
     */
    static RagPrompt of(LanguageModel model, GenerationRequest request, int[] systemPrefix, String method) {
        int[] full = new Generator(model).promptIds(request);
        int[] text = request.promptIds() != null ? request.promptIds() : model.tokenizer().encode(request.prompt());
        int special = prefixLength(full, text);
        int p0 = special + systemPrefix.length;
        int[] prefix = Arrays.copyOf(full, p0);
        System.arraycopy(systemPrefix, 0, prefix, special, systemPrefix.length);
        int[] question = Arrays.copyOfRange(full, special, full.length);
        for (int id : systemPrefix) {
            if (id < 0 || id >= model.config().vocabSize()) {
                throw new TandemException("system prefix token id " + id + " is outside the vocabulary of "
                        + model.config().vocabSize() + " (config.json vocab_size).");
            }
        }
        if (question.length == 0) {
            throw new TandemException("the question is empty: --method " + method + " needs a prompt to retrieve and answer with.");
        }
        return new RagPrompt(prefix, question);
    }

    /** The question as text, for a retriever or an encoder: the request's prompt, or its ids decoded. */
    static String questionText(LanguageModel model, GenerationRequest request) {
        return request.prompt() != null ? request.prompt() : model.tokenizer().decode(request.promptIds());
    }

    /** Refuses a passage (the {@code index}-th, from 0) that is empty or has an id outside {@code config}'s vocabulary. */
    static void checkPassage(ModelConfig config, int index, int[] passage) {
        if (passage.length == 0) {
            throw new TandemException("passage " + (index + 1) + " is empty.");
        }
        for (int id : passage) {
            if (id < 0 || id >= config.vocabSize()) {
                throw new TandemException("passage " + (index + 1) + " has token id " + id + ", outside the vocabulary of "
                        + config.vocabSize() + " (config.json vocab_size); was its index built for another model?");
            }
        }
    }

    /** Length of what the tokenizer put before {@code text} in {@code full}: where {@code text} starts in it (0 if nowhere). */
    static int prefixLength(int[] full, int[] text) {
        for (int start = 0; start + text.length <= full.length; start++) {
            if (Arrays.equals(full, start, start + text.length, text, 0, text.length)) {
                return start;
            }
        }
        return 0;
    }
}
