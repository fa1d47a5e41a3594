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

    /**
     * {@code request} decoded by this method as a {@link DecodingTask}, not started: what {@link Engine}
     * batches with other requests. The prompt is encoded and checked here.
     *
     * @throws dev.tandem.runtime.TandemException if the prompt is bad for a model of the method
     */
    DecodingTask task(GenerationRequest request);

    /**
     * Generates to the end, calling {@code listener} with each token as soon as it is accepted: the
     * request's {@link #task} stepped alone ({@link Steps#run}).
     */
    default GenerationResult generate(GenerationRequest request, Consumer<TokenEvent> listener) {
        return Steps.run(task(request), listener);
    }

    default GenerationResult generate(GenerationRequest request) {
        return generate(request, event -> { });
    }
}
