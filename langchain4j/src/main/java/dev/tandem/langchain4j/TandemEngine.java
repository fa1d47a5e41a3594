package dev.tandem.langchain4j;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.NamedMethods;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;

/**
 * A target model, an optional draft model that shares its tokenizer, and one continuous-batching {@link Engine} over
 * them: what {@link TandemChatModel} and {@link TandemStreamingChatModel} generate with. Build one and hand it to
 * several chat models so that they share one loaded model and one engine (their requests then batch together); close
 * it after them. Thread-safe.
 *
 * <pre>{@code
 * try (TandemEngine tandem = TandemEngine.builder().modelPath(Path.of("models/bard-l"))
 *         .draftModelPath(Path.of("models/bard-s")).build()) {
 *     ChatModel chat = TandemChatModel.builder().engine(tandem).method("speculative").build();
 *     StreamingChatModel streaming = TandemStreamingChatModel.builder().engine(tandem).build();
 *     ...
 * }
 * }</pre>
 */
public final class TandemEngine implements AutoCloseable {
    private final LanguageModel target;
    private final LanguageModel draft;
    private final Engine engine;
    private final boolean ownsModels;
    private final boolean ownsEngine;
    private volatile boolean closed;

    private TandemEngine(LanguageModel target, LanguageModel draft, Engine engine, boolean ownsModels, boolean ownsEngine) {
        this.target = target;
        this.draft = draft;
        this.engine = engine;
        this.ownsModels = ownsModels;
        this.ownsEngine = ownsEngine;
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * A new engine over the caller's models, which stay the caller's: {@link #close()} closes the engine only.
     *
     * @param draft the draft model, or null
     */
    public static TandemEngine of(LanguageModel target, LanguageModel draft) {
        Objects.requireNonNull(target, "target");
        return new TandemEngine(target, draft, new Engine(target), false, true);
    }

    /**
     * The caller's engine (its model is the target) and draft model; {@link #close()} closes neither.
     *
     * @param draft the draft model, or null
     */
    public static TandemEngine of(Engine engine, LanguageModel draft) {
        Objects.requireNonNull(engine, "engine");
        return new TandemEngine(engine.model(), draft, engine, false, false);
    }

    /** The model that generates (the engine's). */
    public LanguageModel target() {
        return target;
    }

    /** The draft model, when there is one. */
    public Optional<LanguageModel> draft() {
        return Optional.ofNullable(draft);
    }

    public Engine engine() {
        return engine;
    }

    /**
     * The decoding method {@code name} ({@link NamedMethods#NAMES}) over these models.
     *
     * @param draftLength tokens drafted per round, or null for the method's default
     * @throws IllegalArgumentException in one sentence, if the name is unknown or the method needs a draft and there is none
     */
    public DecodingStrategy method(String name, Integer draftLength) {
        return NamedMethods.create(Objects.requireNonNull(name, "method"), target, draft, draftLength);
    }

    /** Closes the engine (cancelling what still runs) and the models, each only if this holder made it. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (ownsEngine) {
            engine.close();
        }
        if (ownsModels) {
            try {
                if (draft != null) {
                    draft.close(); // runs on the target's backend, so it goes first
                }
            } finally {
                target.close();
            }
        }
    }

    /** Loads a target (and optionally a draft on the target's backend) from paths; the holder owns them. */
    public static final class Builder {
        private Path modelPath;
        private Path draftModelPath;
        private int threads;
        private String device;
        private int kvTokens;
        private Engine.Options engineOptions = Engine.Options.defaults();

        private Builder() {
        }

        /** A model directory or {@code .gguf} file, as {@code tandem generate --model} takes. */
        public Builder modelPath(Path modelPath) {
            this.modelPath = modelPath;
            return this;
        }

        /** A draft model sharing the target's tokenizer (for speculative, tree and collab); loaded on the target's backend. */
        public Builder draftModelPath(Path draftModelPath) {
            this.draftModelPath = draftModelPath;
            return this;
        }

        /** CPU threads (0, the default: every processor). */
        public Builder threads(int threads) {
            this.threads = threads;
            return this;
        }

        /** The backend ({@code cpu} by default, {@code cuda}, {@code auto}). */
        public Builder device(String device) {
            this.device = device;
            return this;
        }

        /** KV-cache tokens of each model (0, the default: the model's context, at most 1 GiB). */
        public Builder kvTokens(int kvTokens) {
            this.kvTokens = kvTokens;
            return this;
        }

        public Builder engineOptions(Engine.Options engineOptions) {
            this.engineOptions = Objects.requireNonNull(engineOptions, "engineOptions");
            return this;
        }

        /**
         * Loads the models and starts the engine.
         *
         * @throws IllegalArgumentException if no model path was given or threads or KV tokens are negative
         * @throws dev.tandem.runtime.TandemException if a model cannot be loaded
         */
        public TandemEngine build() {
            if (modelPath == null) {
                throw new IllegalArgumentException("a TandemEngine needs a modelPath (a model directory or .gguf file).");
            }
            if (threads < 0 || kvTokens < 0) {
                throw new IllegalArgumentException("threads and kvTokens must be 0 (the default) or more, but were "
                        + threads + " and " + kvTokens + ".");
            }
            ModelLoader.Options options = ModelLoader.Options.defaults().withThreads(threads).withKvTokens(kvTokens);
            if (device != null) {
                options = options.withDevice(device);
            }
            LanguageModel target = ModelLoader.load(modelPath, options);
            LanguageModel draft = null;
            try {
                if (draftModelPath != null) {
                    draft = ModelLoader.load(draftModelPath, options.withBackend(target.backend()));
                }
                return new TandemEngine(target, draft, new Engine(target, engineOptions), true, true);
            } catch (RuntimeException | Error e) {
                if (draft != null) {
                    draft.close();
                }
                target.close();
                throw e;
            }
        }
    }
}
