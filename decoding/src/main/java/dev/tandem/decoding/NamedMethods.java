package dev.tandem.decoding;

import dev.tandem.decoding.speculative.LookaheadDecoding;
import dev.tandem.decoding.speculative.PromptLookupDecoding;
import dev.tandem.decoding.speculative.SpeculativeDecoding;
import dev.tandem.decoding.speculative.TreeDecoding;
import dev.tandem.transformer.LanguageModel;

import java.util.List;

/**
 * The decoding methods a caller can pick by name per request when all it holds is a target model and,
 * optionally, a draft model that shares its tokenizer: what {@code tandem serve} and the langchain4j
 * models offer. Methods that need more (a second prompt, an amateur model, a passage index, a corpus)
 * are built by {@code tandem generate} from its own flags.
 */
public final class NamedMethods {

    /** Every name {@link #create} takes, plain first. */
    public static final List<String> NAMES = List.of("plain", "speculative", "tree", "ngram", "lookahead", "collab");

    /** The names that need a draft model. */
    public static final List<String> WITH_DRAFT = List.of("speculative", "tree", "collab");

    /** Draft tokens per round of {@code speculative} when none is given. */
    public static final int DEFAULT_DRAFT_LENGTH = 4;

    private NamedMethods() {
    }

    /** The names {@link #create} can build with these models (those needing a draft only when there is one). */
    public static List<String> available(boolean haveDraft) {
        return haveDraft ? NAMES : NAMES.stream().filter(n -> !WITH_DRAFT.contains(n)).toList();
    }

    /**
     * The method {@code name} over {@code target} and, for the methods that guess with one, {@code draft}.
     *
     * @param draft       the draft model, or null when there is none
     * @param draftLength tokens drafted per round (speculative, ngram), or null for the method's default
     * @throws IllegalArgumentException in one sentence, if the name is unknown, the method needs a draft and
     *                                  there is none, or the draft length is outside [1, 64]
     */
    public static DecodingStrategy create(String name, LanguageModel target, LanguageModel draft, Integer draftLength) {
        if (!NAMES.contains(name)) {
            throw new IllegalArgumentException("unknown method \"" + name + "\"; the methods are " + String.join(", ", NAMES) + ".");
        }
        if (WITH_DRAFT.contains(name) && draft == null) {
            throw new IllegalArgumentException("method \"" + name + "\" needs a draft model, and none is loaded; the methods "
                    + "without one are " + String.join(", ", available(false)) + ".");
        }
        if (draftLength != null && (draftLength < 1 || draftLength > 64)) {
            throw new IllegalArgumentException("the draft length must be between 1 and 64, but was " + draftLength + ".");
        }
        return switch (name) {
            case "speculative" -> new SpeculativeDecoding(target, draft, draftLength == null ? DEFAULT_DRAFT_LENGTH : draftLength);
            case "tree" -> TreeDecoding.of(target, draft);
            case "ngram" -> new PromptLookupDecoding(target, PromptLookupDecoding.DEFAULT_MAX_NGRAM,
                    draftLength == null ? PromptLookupDecoding.DEFAULT_DRAFT_LENGTH : draftLength);
            case "lookahead" -> new LookaheadDecoding(target);
            case "collab" -> new CollaborativeDecoding(draft, target);
            default -> new Generator(target);
        };
    }
}
