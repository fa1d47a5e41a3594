package dev.tandem.decoding;

import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.tokenizer.Tokenizer;

/**
 * The check every two-model method makes before it starts: token ids mean the same thing to both
 * models, or one model's token would be read as another word by the other — a silent wrong answer.
 */
public final class SharedVocabulary {
    private SharedVocabulary() {}

    /**
     * Requires equal vocabulary sizes (config.json and tokenizer) and the same token string for every id.
     *
     * @param main      the model whose output counts (a target, a large model)
     * @param mainRole  what to call it in the message, e.g. "target"
     * @param other     the helper model (a draft, a small model)
     * @param otherRole e.g. "draft"
     * @param rule      the sentence's ending, e.g. "a draft must share the target's tokenizer"
     * @throws TandemException naming the first difference
     */
    public static void require(LanguageModel main, String mainRole, LanguageModel other, String otherRole, String rule) {
        int mv = main.config().vocabSize(), ov = other.config().vocabSize();
        if (mv != ov) {
            throw new TandemException("the " + otherRole + " model " + other.directory() + " has a vocabulary of " + ov
                    + " tokens but the " + mainRole + " " + main.directory() + " has " + mv
                    + " (config.json vocab_size); " + rule + ".");
        }
        Tokenizer mt = main.tokenizer(), ot = other.tokenizer();
        if (mt.vocabSize() != ot.vocabSize()) {
            throw new TandemException("the " + otherRole + " model " + other.directory() + "'s tokenizer has " + ot.vocabSize()
                    + " tokens but the " + mainRole + " " + main.directory() + "'s has " + mt.vocabSize() + "; " + rule + ".");
        }
        for (int id = 0; id < mt.vocabSize(); id++) {
            String a = content(mt, id), b = content(ot, id);
            if (!a.equals(b)) {
                throw new TandemException("the " + otherRole + " model " + other.directory() + "'s tokenizer differs from the "
                        + mainRole + " " + main.directory() + "'s: token " + id + " is " + b + " in the " + otherRole
                        + " but " + a + " in the " + mainRole + "; " + rule + ".");
            }
        }
    }

    private static String content(Tokenizer t, int id) {
        try {
            return "\"" + t.tokenContent(id) + "\"";
        } catch (IllegalArgumentException e) {
            return "missing";
        }
    }
}
