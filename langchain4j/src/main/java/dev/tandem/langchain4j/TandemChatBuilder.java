package dev.tandem.langchain4j;

import dev.tandem.decoding.Engine;
import dev.tandem.decoding.NamedMethods;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.chat.ChatTemplate;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * The options {@link TandemChatModel.Builder} and {@link TandemStreamingChatModel.Builder} share. Where the model
 * comes from is one of: {@link #engine(TandemEngine)} (shared, the caller closes it), {@link #engine(Engine)} or
 * {@link #model(LanguageModel)} (the caller's, the chat model closes only what it made), or {@link #modelPath(Path)}
 * (loaded by the chat model, which owns and closes it). The sampling options are defaults that a request's
 * {@code ChatRequestParameters} override; unset ones fall back to the model's {@code generation_config.json}.
 */
public abstract class TandemChatBuilder<B extends TandemChatBuilder<B>> {
    TandemEngine engine;
    Engine sharedEngine;
    LanguageModel model;
    LanguageModel draftModel;
    Path modelPath;
    Path draftModelPath;
    int threads;
    String device;
    int kvTokens;
    String method = "plain";
    Integer draftLength;
    Path chatTemplatePath;
    ChatTemplate chatTemplate;
    Double temperature;
    Double topP;
    Integer topK;
    Integer maxTokens;
    List<String> stopSequences;
    Long seed;
    String modelName;

    TandemChatBuilder() {
    }

    @SuppressWarnings("unchecked")
    private B self() {
        return (B) this;
    }

    /** A shared holder of model(s) and engine; the chat model does not close it. */
    public B engine(TandemEngine engine) {
        this.engine = engine;
        return self();
    }

    /** The caller's engine (its model generates); the chat model does not close it. */
    public B engine(Engine engine) {
        this.sharedEngine = engine;
        return self();
    }

    /** The caller's model: the chat model runs its own engine over it and closes only that. */
    public B model(LanguageModel model) {
        this.model = model;
        return self();
    }

    /** The caller's draft model (with {@link #engine(Engine)} or {@link #model(LanguageModel)}). */
    public B draftModel(LanguageModel draftModel) {
        this.draftModel = draftModel;
        return self();
    }

    /** A model directory or {@code .gguf} file to load; the chat model owns it and closes it. */
    public B modelPath(Path modelPath) {
        this.modelPath = modelPath;
        return self();
    }

    /** A draft model to load with {@link #modelPath(Path)}, on the target's backend. */
    public B draftModelPath(Path draftModelPath) {
        this.draftModelPath = draftModelPath;
        return self();
    }

    /** CPU threads of a model loaded from a path (0, the default: every processor). */
    public B threads(int threads) {
        this.threads = threads;
        return self();
    }

    /** The backend of a model loaded from a path ({@code cpu} by default). */
    public B device(String device) {
        this.device = device;
        return self();
    }

    /** KV-cache tokens of a model loaded from a path (0, the default: the model's context, at most 1 GiB). */
    public B kvTokens(int kvTokens) {
        this.kvTokens = kvTokens;
        return self();
    }

    /** The decoding method, one of {@link NamedMethods#NAMES} ({@code plain} by default). */
    public B method(String method) {
        this.method = method;
        return self();
    }

    /** Tokens drafted per round (speculative, ngram); null, the default: the method's own. */
    public B draftLength(Integer draftLength) {
        this.draftLength = draftLength;
        return self();
    }

    /** A chat template file ({@code tokenizer_config.json} or {@code .jinja}) instead of the model's own. */
    public B chatTemplate(Path chatTemplate) {
        this.chatTemplatePath = chatTemplate;
        return self();
    }

    /** A chat template instead of the model's own. */
    public B chatTemplate(ChatTemplate chatTemplate) {
        this.chatTemplate = chatTemplate;
        return self();
    }

    /** Default temperature (0: greedy). */
    public B temperature(Double temperature) {
        this.temperature = temperature;
        return self();
    }

    /** Default nucleus mass, in (0, 1]. */
    public B topP(Double topP) {
        this.topP = topP;
        return self();
    }

    /** Default top-k (0: off). */
    public B topK(Integer topK) {
        this.topK = topK;
        return self();
    }

    /** Default most tokens to generate (a request's {@code maxOutputTokens}). */
    public B maxTokens(Integer maxTokens) {
        this.maxTokens = maxTokens;
        return self();
    }

    /** Default stop strings (cut from the text). */
    public B stopSequences(List<String> stopSequences) {
        this.stopSequences = stopSequences;
        return self();
    }

    /** The sampling seed (langchain4j's requests carry none); 0 by default. */
    public B seed(Long seed) {
        this.seed = seed;
        return self();
    }

    /** The model name responses report (default: the model directory's or file's name). */
    public B modelName(String modelName) {
        this.modelName = modelName;
        return self();
    }

    /** Resolves the options into what a chat model runs with; closes what it loaded if a later check fails. */
    ChatSupport support() {
        int sources = (engine != null ? 1 : 0) + (sharedEngine != null ? 1 : 0) + (model != null ? 1 : 0) + (modelPath != null ? 1 : 0);
        if (sources != 1) {
            throw new IllegalArgumentException("give exactly one of engine(TandemEngine), engine(Engine), model(LanguageModel) "
                    + "and modelPath(Path), but " + (sources == 0 ? "none was given." : sources + " were given."));
        }
        if (draftModelPath != null && modelPath == null) {
            throw new IllegalArgumentException("draftModelPath goes with modelPath; with a shared engine or model give draftModel.");
        }
        if (draftModel != null && sharedEngine == null && model == null) {
            throw new IllegalArgumentException("draftModel goes with engine(Engine) or model(LanguageModel).");
        }
        if (chatTemplate != null && chatTemplatePath != null) {
            throw new IllegalArgumentException("give chatTemplate as a file or as a ChatTemplate, not both.");
        }
        Objects.requireNonNull(method, "method");
        TandemEngine resolved;
        boolean owns;
        if (engine != null) {
            resolved = engine;
            owns = false;
        } else if (sharedEngine != null) {
            resolved = TandemEngine.of(sharedEngine, draftModel);
            owns = false;
        } else if (model != null) {
            resolved = TandemEngine.of(model, draftModel);
            owns = true;
        } else {
            resolved = TandemEngine.builder().modelPath(modelPath).draftModelPath(draftModelPath).threads(threads)
                    .device(device).kvTokens(kvTokens).build();
            owns = true;
        }
        try {
            return new ChatSupport(this, resolved, owns);
        } catch (RuntimeException | Error e) {
            if (owns) {
                resolved.close();
            }
            throw e;
        }
    }
}
