package dev.tandem.transformer;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Backends;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.llama.LlamaModel;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.GgufTokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;
import dev.tandem.transformer.weights.GgufCheckpoint;
import dev.tandem.transformer.weights.WeightStore;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Loads a model: a Hugging Face model directory ({@code config.json}, safetensors, {@code tokenizer.json}) or a GGUF
 * file, whose metadata gives the configuration and the tokenizer ({@link GgufCheckpoint}).
 */
public final class ModelLoader {

    /**
     * @param threads    CPU threads for the backend (0 = all processors)
     * @param kvTokens   KV-cache capacity in tokens over all sequences (0 = sized by {@code kvMemory},
     *                   else the model's context capped by {@code kvMaxBytes})
     * @param kvMaxBytes the most memory a default-sized KV cache may take
     * @param backend    a backend to share with other models (the caller closes it), or null for a
     *                   new backend of {@code device} with {@code threads} threads that the model owns and closes
     * @param kvDtype    how K and V are stored: {@link DType#F32} (default) or {@link DType#BF16}
     * @param kvMemory   KV-cache budget in bytes (0 = none): as many blocks as fit, when {@code kvTokens} is 0
     * @param mappedWeights true: weights are read through the file mapping (zero-copy, nothing to load);
     *                   false (default): copied into memory of their own at load, which reads at a steady
     *                   rate ({@link WeightStore#open(Path, boolean)})
     * @param device     the {@link dev.tandem.runtime.BackendProvider} a new backend comes from
     *                   ({@link Backends#DEFAULT} = {@code cpu}); ignored when {@code backend} is given
     */
    public record Options(int threads, int kvTokens, long kvMaxBytes, Backend backend, DType kvDtype, long kvMemory,
                          boolean mappedWeights, String device) {
        public Options {
            if (device == null) {
                device = Backends.DEFAULT;
            }
            if (threads < 0 || kvTokens < 0 || kvMaxBytes <= 0 || kvMemory < 0) {
                throw new IllegalArgumentException("threads, kvTokens and kvMemory must be >= 0 and kvMaxBytes > 0");
            }
            if (kvDtype == null) {
                kvDtype = DType.F32;
            }
            if (kvDtype != DType.F32 && kvDtype != DType.BF16) {
                throw new IllegalArgumentException("the KV cache stores f32 or bf16, not " + kvDtype.lowerName());
            }
        }

        /** The options of before KV dtypes and budgets: an f32 cache sized by tokens or the default. */
        public Options(int threads, int kvTokens, long kvMaxBytes, Backend backend) {
            this(threads, kvTokens, kvMaxBytes, backend, DType.F32, 0, false, Backends.DEFAULT);
        }

        public static Options defaults() {
            return new Options(0, 0, 1L << 30, null, DType.F32, 0, false, Backends.DEFAULT);
        }

        /** Opens a new backend from the provider called {@code device} ({@code cpu} unless a GPU build adds more). */
        public Options withDevice(String device) {
            return new Options(threads, kvTokens, kvMaxBytes, backend, kvDtype, kvMemory, mappedWeights, device);
        }

        /**
         * Threads of the backend this load opens (0 = every processor). More than the processors are capped
         * to the processor count, with a warning on the {@code dev.tandem.runtime} logger.
         */
        public Options withThreads(int threads) {
            return new Options(threads, kvTokens, kvMaxBytes, backend, kvDtype, kvMemory, mappedWeights, device);
        }

        public Options withKvTokens(int kvTokens) {
            return new Options(threads, kvTokens, kvMaxBytes, backend, kvDtype, kvMemory, mappedWeights, device);
        }

        /** Runs the model on {@code backend}, e.g. one thread pool shared by a draft and a target model. */
        public Options withBackend(Backend backend) {
            return new Options(threads, kvTokens, kvMaxBytes, backend, kvDtype, kvMemory, mappedWeights, device);
        }

        /** Stores K and V as {@code dtype} (f32 or bf16). */
        public Options withKvDtype(DType dtype) {
            return new Options(threads, kvTokens, kvMaxBytes, backend, dtype, kvMemory, mappedWeights, device);
        }

        /** Reads the weights through the file mapping (true) or from a copy made at load (false, the default). */
        public Options withMappedWeights(boolean mapped) {
            return new Options(threads, kvTokens, kvMaxBytes, backend, kvDtype, kvMemory, mapped, device);
        }

        /**
         * Sizes the KV cache from a budget of {@code bytes} (K and V of every layer, in the KV dtype):
         * as many whole blocks as fit. {@link #withKvTokens} takes precedence when both are set.
         */
        public Options withKvMemory(long bytes) {
            return new Options(threads, kvTokens, kvMaxBytes, backend, kvDtype, bytes, mappedWeights, device);
        }
    }

    private ModelLoader() {
    }

    /**
     * The tokenizer file of a model directory: {@code tokenizer.json}, or a gzip-compressed
     * {@code tokenizer.json.gz} when that is all there is.
     *
     * @throws TandemException if the directory has neither
     */
    public static Path tokenizerFile(Path dir) {
        Path plain = dir.resolve("tokenizer.json");
        if (Files.isRegularFile(plain)) {
            return plain;
        }
        Path gzip = dir.resolve("tokenizer.json.gz");
        if (Files.isRegularFile(gzip)) {
            return gzip;
        }
        throw new TandemException("tokenizer file not found: " + plain + " (nor " + gzip.getFileName() + ").");
    }

    public static LanguageModel load(Path dir) {
        return load(dir, Options.defaults());
    }

    /**
     * The configuration of the model at {@code path} (a model directory or a {@code .gguf} file), without its weights:
     * what commands check their settings against before anything heavy loads.
     *
     * @throws TandemException when the path is neither, or the configuration is missing or malformed
     */
    public static ModelConfig config(Path path) {
        if (GgufCheckpoint.isGgufPath(path)) {
            try (GgufCheckpoint checkpoint = GgufCheckpoint.open(path, false)) {
                return checkpoint.config();
            }
        }
        requireDirectory(path);
        return ModelConfig.load(path);
    }

    /**
     * The tokenizer of the model at {@code path}: a directory's {@link #tokenizerFile}, or the one a {@code .gguf}
     * file's metadata describes.
     *
     * @throws TandemException when the path is neither, or the tokenizer is missing or malformed
     */
    public static Tokenizer tokenizer(Path path) {
        if (GgufCheckpoint.isGgufPath(path)) {
            try (GgufCheckpoint checkpoint = GgufCheckpoint.open(path, false)) {
                return GgufTokenizer.fromMetadata(checkpoint.metadata(), path.getFileName().toString());
            }
        }
        requireDirectory(path);
        return Tokenizers.load(tokenizerFile(path));
    }

    private static void requireDirectory(Path dir) {
        if (!Files.exists(dir)) {
            throw new TandemException("model directory not found: " + dir + ".");
        }
        if (!Files.isDirectory(dir)) {
            throw new TandemException(dir + " is neither a model directory nor a .gguf file.");
        }
    }

    /**
     * Loads the model at {@code path}: a model directory, or a {@code .gguf} file.
     *
     * @throws TandemException when the path is neither, or anything in it is missing or malformed
     */
    public static LanguageModel load(Path path, Options options) {
        if (GgufCheckpoint.isGgufPath(path)) {
            return loadGguf(path, options);
        }
        Path dir = path;
        requireDirectory(dir);
        ModelConfig config = ModelConfig.load(dir);
        GenerationConfig generation = GenerationConfig.load(dir);
        Tokenizer tokenizer = Tokenizers.load(tokenizerFile(dir));
        // The device first: a wrong --device should not wait for gigabytes of weights to load.
        boolean ownsBackend = options.backend() == null;
        Backend backend = ownsBackend ? Backends.open(options.device(), options.threads()) : options.backend();
        WeightStore weights = null;
        try {
            weights = WeightStore.open(dir, !options.mappedWeights());
            return new LlamaModel(dir, config, generation, tokenizer, weights, backend, ownsBackend, options);
        } catch (RuntimeException | Error e) {
            if (ownsBackend) {
                backend.close();
            }
            if (weights != null) {
                weights.close();
            }
            throw e;
        }
    }

    /**
     * A GGUF file: unlike a directory, its weights are opened (and, by default, copied) before the backend, since the
     * configuration and the tokenizer are in the same file.
     */
    private static LanguageModel loadGguf(Path file, Options options) {
        GgufCheckpoint checkpoint = GgufCheckpoint.open(file, !options.mappedWeights());
        Backend backend = null;
        boolean ownsBackend = options.backend() == null;
        try {
            Tokenizer tokenizer = GgufTokenizer.fromMetadata(checkpoint.metadata(), file.getFileName().toString());
            backend = ownsBackend ? Backends.open(options.device(), options.threads()) : options.backend();
            return new LlamaModel(file, checkpoint.config(), checkpoint.generationConfig(), tokenizer,
                    WeightStore.of(checkpoint), backend, ownsBackend, options);
        } catch (RuntimeException | Error e) {
            if (ownsBackend && backend != null) {
                backend.close();
            }
            checkpoint.close();
            throw e;
        }
    }
}
