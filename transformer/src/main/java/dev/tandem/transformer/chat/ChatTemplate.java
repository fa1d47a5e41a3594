package dev.tandem.transformer.chat;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * A model's chat template: the Jinja text of {@code tokenizer_config.json}'s {@code chat_template}, rendered
 * as Hugging Face transformers' {@code apply_chat_template(..., tokenize=False)} renders it. Thread-safe.
 * (API fixed; implementation in progress.)
 */
public final class ChatTemplate {

    private final String source;
    private final String bosToken;
    private final String eosToken;

    private ChatTemplate(String source, String bosToken, String eosToken) {
        this.source = source;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
    }

    /** A template from its Jinja source and the special tokens it may use ({@code null}: the empty string). */
    public static ChatTemplate of(String source, String bosToken, String eosToken) {
        return new ChatTemplate(source, bosToken == null ? "" : bosToken, eosToken == null ? "" : eosToken);
    }

    /**
     * The template of a model: for a directory its {@code tokenizer_config.json}'s {@code chat_template}, for
     * a GGUF file its {@code tokenizer.chat_template}; empty when the model has none.
     *
     * @throws dev.tandem.runtime.TandemException (one sentence naming the file and field) if the file is unreadable
     *                                            or the template does not parse
     */
    public static Optional<ChatTemplate> forModel(Path model) {
        throw new UnsupportedOperationException("in progress");
    }

    /**
     * A template from a file: a {@code tokenizer_config.json} (its {@code chat_template} and special tokens) or
     * a Jinja file ({@code .jinja}, no special tokens).
     */
    public static ChatTemplate fromFile(Path file) {
        throw new UnsupportedOperationException("in progress");
    }

    /**
     * The conversation as the prompt text the model was trained on, with the variables transformers passes:
     * {@code messages}, {@code add_generation_prompt}, {@code bos_token}, {@code eos_token} ({@code tools}
     * undefined).
     *
     * @throws ChatTemplateException in one sentence, if the template raises an exception or fails to render
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        throw new UnsupportedOperationException("in progress");
    }

    public String source() {
        return source;
    }

    public String bosToken() {
        return bosToken;
    }

    public String eosToken() {
        return eosToken;
    }
}
