package dev.tandem.server;

import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.chat.ChatTemplate;

import java.util.Objects;

/**
 * What {@code tandem serve} serves: a target model, optionally a draft model sharing its tokenizer (for the
 * methods that guess with one), the chat template of {@code /v1/chat/completions} (null: chat requests are
 * answered 400), and an encoder for {@code /v1/embeddings} (null: not served). The caller loads and closes
 * them; the server only uses them.
 *
 * @param modelId          the name clients give as {@code model} (the directory or file name)
 * @param embeddingModelId the name of the encoder, or null without one
 */
public record ServedModels(String modelId, LanguageModel target, LanguageModel draft, ChatTemplate chatTemplate,
                           String embeddingModelId, Embedder embedder) {

    public ServedModels {
        Objects.requireNonNull(modelId, "modelId");
        Objects.requireNonNull(target, "target");
        if ((embedder == null) != (embeddingModelId == null)) {
            throw new IllegalArgumentException("give an embedding model id exactly when an embedder is given.");
        }
        if (embeddingModelId != null && embeddingModelId.equals(modelId)) {
            throw new IllegalArgumentException("the embedding model and the model are both named \"" + modelId + "\".");
        }
    }

    /** The target alone, named after its directory or file. */
    public static ServedModels of(LanguageModel target) {
        return new ServedModels(nameOf(target), target, null, null, null, null);
    }

    public ServedModels withDraft(LanguageModel d) {
        return new ServedModels(modelId, target, d, chatTemplate, embeddingModelId, embedder);
    }

    public ServedModels withChatTemplate(ChatTemplate t) {
        return new ServedModels(modelId, target, draft, t, embeddingModelId, embedder);
    }

    public ServedModels withEmbedder(String id, Embedder e) {
        return new ServedModels(modelId, target, draft, chatTemplate, id, e);
    }

    /** A model's name for clients: its directory's or file's name. */
    public static String nameOf(LanguageModel model) {
        return model.directory().getFileName().toString();
    }
}
