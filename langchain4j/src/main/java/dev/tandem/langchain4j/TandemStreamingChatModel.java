package dev.tandem.langchain4j;

import dev.langchain4j.model.ModelProvider;
import dev.langchain4j.model.chat.StreamingChatModel;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ChatRequestParameters;
import dev.langchain4j.model.chat.response.PartialResponse;
import dev.langchain4j.model.chat.response.PartialResponseContext;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.chat.response.StreamingHandle;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.TokenEvent;

/**
 * langchain4j's {@link StreamingChatModel} on Tandem, in-process: as {@link TandemChatModel}, with each token's text
 * handed to {@code onPartialResponse} as the engine accepts it (a token whose text is held back — a partial UTF-8
 * character, a possible stop-string prefix — comes with a later one), then {@code onCompleteResponse} with the whole
 * response, whose text is the partial responses joined. The handler runs on a virtual thread of the request's own, never
 * on the engine's. A request langchain4j or Tandem refuses (tools, images, a value out of range, ...) throws from
 * {@code chat} at once; a failure while generating goes to {@code onError}, as does an exception thrown by the
 * handler (which ends the request). {@link StreamingHandle#cancel()} of the partial response's context stops the
 * request and frees its memory; nothing more is delivered then.
 */
public final class TandemStreamingChatModel implements StreamingChatModel, AutoCloseable {
    private final ChatSupport support;

    private TandemStreamingChatModel(ChatSupport support) {
        this.support = support;
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public void doChat(ChatRequest request, StreamingChatResponseHandler handler) {
        GenerationRequest generation = support.prepare(request); // refusals throw here, on the caller's thread
        Thread.ofVirtual().name("tandem-stream").start(() -> stream(generation, handler));
    }

    private void stream(GenerationRequest generation, StreamingChatResponseHandler handler) {
        EngineHandle handle;
        try {
            handle = support.submit(generation, null);
        } catch (RuntimeException | Error e) {
            error(handler, e);
            return;
        }
        Cancel cancel = new Cancel(handle);
        PartialResponseContext context = new PartialResponseContext(cancel);
        try (handle) {
            while (!cancel.isCancelled() && handle.hasNext()) {
                TokenEvent event = handle.next();
                if (!event.textDelta().isEmpty()) {
                    handler.onPartialResponse(new PartialResponse(event.textDelta()), context);
                }
            }
            if (cancel.isCancelled()) {
                return;
            }
            GenerationResult result = handle.result();
            handler.onCompleteResponse(support.response(result));
        } catch (RuntimeException | Error e) {
            if (!cancel.isCancelled()) {
                error(handler, e);
            }
        }
    }

    private static void error(StreamingChatResponseHandler handler, Throwable e) {
        try {
            handler.onError(e);
        } catch (RuntimeException ignored) {
            // a handler failing on its own error has nobody left to tell
        }
    }

    /** The handle langchain4j's partial responses carry: cancelling stops the engine request. */
    private static final class Cancel implements StreamingHandle {
        private final EngineHandle handle;
        private volatile boolean cancelled;

        Cancel(EngineHandle handle) {
            this.handle = handle;
        }

        @Override
        public void cancel() {
            cancelled = true;
            handle.cancel();
        }

        @Override
        public boolean isCancelled() {
            return cancelled;
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

    /** Closes the model and engine when this chat model loaded or started them (cancelling streams still running). */
    @Override
    public void close() {
        support.close();
    }

    public static final class Builder extends TandemChatBuilder<Builder> {
        private Builder() {
        }

        /** @throws IllegalArgumentException as {@link TandemChatModel.Builder#build()} */
        public TandemStreamingChatModel build() {
            return new TandemStreamingChatModel(support());
        }
    }
}
