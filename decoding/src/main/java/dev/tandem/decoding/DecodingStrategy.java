package dev.tandem.decoding;

import java.util.function.Consumer;

/**
 * A way of decoding one request: plain greedy/sampled decoding ({@link Generator}, named {@code plain}),
 * or a speculative method that guesses ahead and verifies ({@code speculative}, {@code ngram}, ...).
 * Every strategy returns the tokens, text and finish reason plus {@link DecodeStats} in
 * {@link GenerationResult#decodeStats()}; the listener sees each token as soon as it is final.
 */
public interface DecodingStrategy {

    /** The method's name as {@code tandem generate --method} spells it. */
    String name();

    /** Generates to the end, calling {@code listener} with each token as soon as it is accepted. */
    GenerationResult generate(GenerationRequest request, Consumer<TokenEvent> listener);

    default GenerationResult generate(GenerationRequest request) {
        return generate(request, event -> { });
    }
}
