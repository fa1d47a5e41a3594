package dev.tandem.langchain4j;

import dev.langchain4j.model.ModelProvider;
import dev.langchain4j.model.chat.ChatModel;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ChatRequestParameters;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.tandem.decoding.EngineHandle;

/**
 * langchain4j's {@link ChatModel} on Tandem, in-process: each request's messages go through the model's chat template,
 * and the prompt is decoded by the chosen method ({@code plain}, {@code speculative}, ...) on Tandem's
 * continuous-batching engine, so requests from many threads share forward passes. Thread-safe; close it when it loaded
 * its own model (a shared {@link TandemEngine} is the caller's to close).
 *
 * <p>Refused in one sentence: tools, JSON response formats, frequency and presence penalties, non-text content,
 * tool-result and custom messages; an unknown method, or a method needing a draft without one, at build time.
 */
public final class TandemChatModel implements ChatModel, AutoCloseable {
    private final ChatSupport support;

    private TandemChatModel(ChatSupport support) {
        this.support = support;
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public ChatResponse doChat(ChatRequest request) {
        try (EngineHandle handle = support.submit(support.prepare(request), null)) {
            return support.response(handle.result());
        }
    }

    @Override
    public ChatRequestParameters defaultRequestParameters() {
        return support.defaults();
    }

    @Override
    public ModelProvider provider() {
        return ModelProvider.OTHER;
    }

    /** The model and engine this chat model generates with. */
    public TandemEngine tandem() {
        return support.tandem();
    }

    /** The decoding method's name. */
    public String method() {
        return support.methodName();
    }

    /** Closes the model and engine when this chat model loaded or started them. */
    @Override
    public void close() {
        support.close();
    }

    public static final class Builder extends TandemChatBuilder<Builder> {
        private Builder() {
        }

        /**
         * @throws IllegalArgumentException in one sentence: no or several model sources, an unknown method, a method
         *                                  needing a draft without one, no chat template, a default out of range
         */
        public TandemChatModel build() {
            return new TandemChatModel(support());
        }
    }
}
