package dev.tandem.transformer.synth;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.weights.SafetensorsWriter.TensorInfo;
import dev.tandem.transformer.weights.WeightStore;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * Random-weight checkpoints in the Hugging Face layout, for benchmarks and tests: {@code config.json},
 * {@code generation_config.json}, one {@code model.safetensors} with the tensor names of
 * {@code LlamaForCausalLM} / {@code Qwen2ForCausalLM} / {@code Qwen3ForCausalLM}, and a synthetic
 * byte-level BPE {@code tokenizer.json} ({@link SyntheticTokenizer}). {@link dev.tandem.transformer.ModelLoader}
 * loads the result like any downloaded checkpoint.
 *
 * <pre>{@code
 * var spec = SyntheticCheckpoints.Spec.ofShape("tinyllama-1.1b", DType.BF16, 0);
 * SyntheticCheckpoints.write(spec, Path.of("/tmp/tinyllama"), false, Progress.NONE);
 * }</pre>
 *
 * <p>Weights depend only on the seed ({@link WeightFill}): linear and embedding weights uniform with
 * standard deviation 0.02, RMSNorm weights 1, biases 0. {@link CheckpointWriter} streams them to disk
 * and makes the directory appear atomically.
 */
public final class SyntheticCheckpoints {

    /** The files a synthetic checkpoint holds. */
    public static final List<String> FILES = List.of(ModelConfig.CONFIG_FILE, GenerationConfig.FILE, "tokenizer.json",
            WeightStore.SINGLE_FILE);

    static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .enable(SerializationFeature.INDENT_OUTPUT)
            .build();

    /**
     * The published {@code config.json} of each shape (Hugging Face repositories
     * TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T, Qwen/Qwen2.5-0.5B, HuggingFaceTB/SmolLM2-135M),
     * minus keys Tandem does not read. Their BOS/EOS ids are replaced by the synthetic tokenizer's.
     */
    private static final Map<String, String> SHAPES;

    static {
        Map<String, String> s = new LinkedHashMap<>();
        s.put("tinyllama-1.1b", """
                {
                  "architectures": ["LlamaForCausalLM"],
                  "attention_bias": false,
                  "bos_token_id": 1,
                  "eos_token_id": 2,
                  "hidden_act": "silu",
                  "hidden_size": 2048,
                  "initializer_range": 0.02,
                  "intermediate_size": 5632,
                  "max_position_embeddings": 2048,
                  "model_type": "llama",
                  "num_attention_heads": 32,
                  "num_hidden_layers": 22,
                  "num_key_value_heads": 4,
                  "pretraining_tp": 1,
                  "rms_norm_eps": 1e-05,
                  "rope_scaling": null,
                  "rope_theta": 10000.0,
                  "tie_word_embeddings": false,
                  "torch_dtype": "bfloat16",
                  "use_cache": true,
                  "vocab_size": 32000
                }
                """);
        s.put("qwen2.5-0.5b", """
                {
                  "architectures": ["Qwen2ForCausalLM"],
                  "attention_dropout": 0.0,
                  "bos_token_id": 151643,
                  "eos_token_id": 151643,
                  "hidden_act": "silu",
                  "hidden_size": 896,
                  "initializer_range": 0.02,
                  "intermediate_size": 4864,
                  "max_position_embeddings": 32768,
                  "max_window_layers": 24,
                  "model_type": "qwen2",
                  "num_attention_heads": 14,
                  "num_hidden_layers": 24,
                  "num_key_value_heads": 2,
                  "rms_norm_eps": 1e-06,
                  "rope_theta": 1000000.0,
                  "sliding_window": 32768,
                  "tie_word_embeddings": true,
                  "torch_dtype": "bfloat16",
                  "use_cache": true,
                  "use_mrope": false,
                  "use_sliding_window": false,
                  "vocab_size": 151936
                }
                """);
        s.put("smollm2-135m", """
                {
                  "architectures": ["LlamaForCausalLM"],
                  "attention_bias": false,
                  "attention_dropout": 0.0,
                  "bos_token_id": 0,
                  "eos_token_id": 0,
                  "hidden_act": "silu",
                  "hidden_size": 576,
                  "initializer_range": 0.041666666666666664,
                  "intermediate_size": 1536,
                  "is_llama_config": true,
                  "max_position_embeddings": 8192,
                  "mlp_bias": false,
                  "model_type": "llama",
                  "num_attention_heads": 9,
                  "num_hidden_layers": 30,
                  "num_key_value_heads": 3,
                  "pretraining_tp": 1,
                  "rms_norm_eps": 1e-05,
                  "rope_interleaved": false,
                  "rope_scaling": null,
                  "rope_theta": 100000,
                  "tie_word_embeddings": true,
                  "torch_dtype": "bfloat16",
                  "use_cache": true,
                  "vocab_size": 49152
                }
                """);
        SHAPES = Collections.unmodifiableMap(s);
    }

    private SyntheticCheckpoints() {
    }

    /** The built-in shapes, in a fixed order. */
    public static List<String> shapeNames() {
        return List.copyOf(SHAPES.keySet());
    }

    /**
     * What to write: a model configuration (validated by {@link ModelConfig}), a weight dtype and a seed.
     * Immutable.
     */
    public static final class Spec {
        private final String label;
        private final String configJson;
        private final ModelConfig config;
        private final DType dtype;
        private final long seed;

        private Spec(String label, String configJson, ModelConfig config, DType dtype, long seed) {
            this.label = label;
            this.configJson = configJson;
            this.config = config;
            this.dtype = dtype;
            this.seed = seed;
        }

        /**
         * One of {@link #shapeNames()}.
         *
         * @throws TandemException for an unknown shape; the message lists the known ones
         */
        public static Spec ofShape(String shape, DType dtype, long seed) {
            return ofConfigJson(shape, shapeJson(shape), dtype, seed);
        }

        /**
         * The {@code config.json}-format file {@code file} (any name).
         *
         * @throws TandemException when the file cannot be read or {@link ModelConfig} rejects it; the
         *                         message names the file
         */
        public static Spec ofConfigFile(Path file, DType dtype, long seed) {
            return ofConfigJson(file.toString(), readConfigFile(file), dtype, seed);
        }

        /**
         * A configuration given as {@code config.json} text; {@code label} names it in messages and in
         * {@link #label()}.
         *
         * @throws TandemException when {@link ModelConfig} rejects it or its vocabulary is below
         *                         {@link SyntheticTokenizer#MIN_VOCAB_SIZE}
         */
        public static Spec ofConfigJson(String label, String configJson, DType dtype, long seed) {
            Objects.requireNonNull(label, "label");
            Objects.requireNonNull(configJson, "configJson");
            Objects.requireNonNull(dtype, "dtype");
            ModelConfig config = parse(label, configJson);
            SyntheticTokenizer.checkVocabSize(config.vocabSize(), label);
            return new Spec(label, configJson, config, dtype, seed);
        }

        /** The shape name, or the config file or label it was made from. */
        public String label() {
            return label;
        }

        /** The configuration text as given (before the BOS/EOS and dtype overrides). */
        public String configJson() {
            return configJson;
        }

        public ModelConfig config() {
            return config;
        }

        public DType dtype() {
            return dtype;
        }

        public long seed() {
            return seed;
        }

        public Spec withDType(DType d) {
            return new Spec(label, configJson, config, Objects.requireNonNull(d, "dtype"), seed);
        }

        public Spec withSeed(long s) {
            return new Spec(label, configJson, config, dtype, s);
        }

        @Override
        public String toString() {
            return label + " " + dtype.lowerName() + " seed " + seed;
        }
    }

    /** The {@code config.json} text of shape {@code shape}; unknown shapes are refused with a list of the known ones. */
    static String shapeJson(String shape) {
        Objects.requireNonNull(shape, "shape");
        String json = SHAPES.get(shape);
        if (json == null) {
            throw new TandemException("unknown shape \"" + shape + "\" (known shapes: "
                    + String.join(", ", SHAPES.keySet()) + ").");
        }
        return json;
    }

    /** The text of the {@code config.json}-format file {@code file}, or a sentence naming it. */
    static String readConfigFile(Path file) {
        try {
            return Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new TandemException("config file not found: " + file + ".");
        } catch (IOException e) {
            throw new TandemException("could not read config file " + file + " (" + e.getMessage() + ").", e);
        }
    }

    /**
     * Parses {@code configJson} with {@link ModelConfig#load} (which reads a directory, so through a
     * temporary one), naming {@code label} instead of {@code config.json} in its messages.
     */
    static ModelConfig parse(String label, String configJson) {
        Path tmp = null;
        try {
            tmp = Files.createTempDirectory("tandem-synth-config");
            Files.writeString(tmp.resolve(ModelConfig.CONFIG_FILE), configJson);
            return ModelConfig.load(tmp);
        } catch (TandemException e) {
            String m = e.getMessage();
            String shown = m.startsWith(ModelConfig.CONFIG_FILE) ? label + m.substring(ModelConfig.CONFIG_FILE.length()) : label + ": " + m;
            throw new TandemException(shown, e);
        } catch (IOException e) {
            throw new TandemException("could not stage " + label + " for validation (" + e.getMessage() + ").", e);
        } finally {
            if (tmp != null) {
                CheckpointWriter.deleteTree(tmp);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------
    // What gets written

    /** One tensor of the checkpoint and how it is initialised. */
    record Planned(TensorInfo info, WeightFill.Init init) {
    }

    /** The tensors of {@code spec}'s checkpoint, in file order (the order the model uses them). */
    public static List<TensorInfo> tensors(Spec spec) {
        return plan(spec.config(), spec.dtype()).stream().map(Planned::info).toList();
    }

    /** The number of parameters (elements of all tensors) of a checkpoint of {@code config}. */
    public static long parameterCount(ModelConfig config) {
        long n = 0;
        for (Planned p : plan(config, DType.F32)) {
            n += p.info().elementCount();
        }
        return n;
    }

    static List<Planned> plan(ModelConfig c, DType dtype) {
        long d = c.hiddenSize();
        long ff = c.intermediateSize();
        long vocab = c.vocabSize();
        long hd = c.headDim();
        long q = (long) c.numHeads() * hd;
        long kv = (long) c.numKvHeads() * hd;
        List<Planned> out = new ArrayList<>();
        PlanBuilder b = new PlanBuilder(out, dtype);
        b.add("model.embed_tokens.weight", WeightFill.Init.UNIFORM, vocab, d);
        for (int l = 0; l < c.numLayers(); l++) {
            String p = "model.layers." + l + ".";
            b.add(p + "input_layernorm.weight", WeightFill.Init.ONES, d);
            b.add(p + "self_attn.q_proj.weight", WeightFill.Init.UNIFORM, q, d);
            if (c.qkvBias()) {
                b.add(p + "self_attn.q_proj.bias", WeightFill.Init.ZEROS, q);
            }
            b.add(p + "self_attn.k_proj.weight", WeightFill.Init.UNIFORM, kv, d);
            if (c.qkvBias()) {
                b.add(p + "self_attn.k_proj.bias", WeightFill.Init.ZEROS, kv);
            }
            b.add(p + "self_attn.v_proj.weight", WeightFill.Init.UNIFORM, kv, d);
            if (c.qkvBias()) {
                b.add(p + "self_attn.v_proj.bias", WeightFill.Init.ZEROS, kv);
            }
            if (c.qkNorm()) {
                b.add(p + "self_attn.q_norm.weight", WeightFill.Init.ONES, hd);
                b.add(p + "self_attn.k_norm.weight", WeightFill.Init.ONES, hd);
            }
            b.add(p + "self_attn.o_proj.weight", WeightFill.Init.UNIFORM, d, q);
            if (c.outputBias()) {
                b.add(p + "self_attn.o_proj.bias", WeightFill.Init.ZEROS, d);
            }
            b.add(p + "post_attention_layernorm.weight", WeightFill.Init.ONES, d);
            b.add(p + "mlp.gate_proj.weight", WeightFill.Init.UNIFORM, ff, d);
            if (c.mlpBias()) {
                b.add(p + "mlp.gate_proj.bias", WeightFill.Init.ZEROS, ff);
            }
            b.add(p + "mlp.up_proj.weight", WeightFill.Init.UNIFORM, ff, d);
            if (c.mlpBias()) {
                b.add(p + "mlp.up_proj.bias", WeightFill.Init.ZEROS, ff);
            }
            b.add(p + "mlp.down_proj.weight", WeightFill.Init.UNIFORM, d, ff);
            if (c.mlpBias()) {
                b.add(p + "mlp.down_proj.bias", WeightFill.Init.ZEROS, d);
            }
        }
        b.add("model.norm.weight", WeightFill.Init.ONES, d);
        if (!c.tieWordEmbeddings()) {
            b.add("lm_head.weight", WeightFill.Init.UNIFORM, vocab, d);
        }
        return out;
    }

    private record PlanBuilder(List<Planned> out, DType dtype) {
        void add(String name, WeightFill.Init init, long... shape) {
            try {
                out.add(new Planned(new TensorInfo(name, dtype, shape), init));
            } catch (IllegalArgumentException e) {
                throw new TandemException("the configuration makes tensor " + name + " too large ("
                        + e.getMessage() + ")", e);
            }
        }
    }

    /** The bytes of {@code model.safetensors} for {@code spec}. */
    public static long safetensorsBytes(Spec spec) {
        return CheckpointWriter.safetensorsBytes(tensors(spec), spec.label());
    }

    /** The bytes a checkpoint of {@code spec} occupies: all four files. */
    public static long totalBytes(Spec spec) {
        SmallFiles f = smallFiles(spec);
        return safetensorsBytes(spec) + f.config.length + f.generation.length + f.tokenizer.length;
    }

    /** The three small files' bytes. */
    private record SmallFiles(byte[] config, byte[] generation, byte[] tokenizer) {
    }

    private static SmallFiles smallFiles(Spec spec) {
        ModelConfig c = spec.config();
        int eot = SyntheticTokenizer.endOfTextId(c.vocabSize());
        try {
            ObjectNode config = (ObjectNode) JSON.readTree(spec.configJson());
            config.put("bos_token_id", eot);
            config.put("eos_token_id", eot);
            config.put("torch_dtype", torchDtype(spec.dtype()));
            ObjectNode gen = JSON.createObjectNode();
            gen.put("bos_token_id", eot);
            gen.put("eos_token_id", eot);
            return new SmallFiles(jsonBytes(config), jsonBytes(gen), SyntheticTokenizer.json(c.vocabSize()));
        } catch (JsonProcessingException e) {
            throw new TandemException(spec.label() + " is not valid JSON.", e); // ModelConfig accepted it: unreachable
        }
    }

    /** The {@code torch_dtype} of {@code config.json} for weights of {@code dtype}. */
    static String torchDtype(DType dtype) {
        return switch (dtype) {
            case F32 -> "float32";
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            case Q8_0, Q4_0, Q4_K, Q6_K -> throw new IllegalArgumentException(
                    "synthetic checkpoints are safetensors of f32, bf16 or f16; quantize one with tandem quantize, not " + dtype.lowerName());
        };
    }

    static byte[] jsonBytes(JsonNode n) throws JsonProcessingException {
        String s = JSON.writeValueAsString(n) + "\n";
        return s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    // ------------------------------------------------------------------------------------------------
    // Writing

    /** What {@link #write} (or {@link PaddedCheckpoints#write}) produced. */
    public record Result(Path directory, long bytes, int tensorCount, long parameterCount) {
    }

    /**
     * Writes the checkpoint of {@code spec} to {@code outDir} using every processor.
     *
     * @param replace  whether an existing {@code outDir} may be replaced (it is, only once the new
     *                 checkpoint is complete, and only if it is empty or holds a {@code config.json})
     * @param progress told the bytes written so far out of {@link #totalBytes}; if it throws, writing
     *                 stops, nothing is left behind, and the exception propagates
     * @throws TandemException when {@code outDir} exists and {@code replace} is false, the file system
     *                         lacks the space, or a file cannot be written; {@code outDir} is then as
     *                         it was and no temporary directory remains
     */
    public static Result write(Spec spec, Path outDir, boolean replace, Progress progress) {
        return write(spec, outDir, replace, progress, Runtime.getRuntime().availableProcessors());
    }

    /** {@link #write(Spec, Path, boolean, Progress)} on {@code threads} threads (the bytes do not depend on it). */
    public static Result write(Spec spec, Path outDir, boolean replace, Progress progress, int threads) {
        Objects.requireNonNull(spec, "spec");
        List<CheckpointWriter.Computed> tensors = new ArrayList<>();
        for (Planned p : plan(spec.config(), spec.dtype())) {
            long key = WeightFill.tensorKey(spec.seed(), p.info().name());
            WeightFill.Init init = p.init();
            tensors.add(new CheckpointWriter.Computed(p.info(),
                    (dst, dtype, first, count) -> WeightFill.fillChunk(dst, init, dtype, key, first, count)));
        }
        SmallFiles small = smallFiles(spec);
        long bytes = CheckpointWriter.write(outDir, replace, progress, threads, List.of(
                new CheckpointWriter.SmallFile(ModelConfig.CONFIG_FILE, small.config),
                new CheckpointWriter.SmallFile(GenerationConfig.FILE, small.generation),
                new CheckpointWriter.SmallFile("tokenizer.json", small.tokenizer)), tensors, spec.label());
        return new Result(outDir.toAbsolutePath().normalize(), bytes, tensors.size(), parameterCount(spec.config()));
    }

    /** For messages: "tinyllama-1.1b bf16, 1.1 B parameters, 2.2 GB". */
    public static String describe(Spec spec) {
        long params = parameterCount(spec.config());
        return String.format(Locale.ROOT, "%s %s, %s parameters, %s", spec.label(), spec.dtype().lowerName(),
                params >= 1_000_000_000 ? String.format(Locale.ROOT, "%.2f B", params / 1e9)
                        : String.format(Locale.ROOT, "%.1f M", params / 1e6),
                Progress.formatBytes(totalBytes(spec)));
    }
}
