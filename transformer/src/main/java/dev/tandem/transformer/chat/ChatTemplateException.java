package dev.tandem.transformer.chat;

import dev.tandem.runtime.TandemException;

/** A chat template that raised an exception ({@code raise_exception(...)}) or could not be rendered; the message is one sentence. */
public final class ChatTemplateException extends TandemException {
    public ChatTemplateException(String message) {
        super(message);
    }

    public ChatTemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
