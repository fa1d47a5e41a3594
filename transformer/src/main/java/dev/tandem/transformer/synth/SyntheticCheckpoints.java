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
import dev.tandem.transformer.weights.SafetensorsWriter;
import dev.tandem.transformer.weights.SafetensorsWriter.TensorInfo;
import dev.tandem.transformer.weights.WeightStore;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileStore;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;

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
 * standard deviation 0.02, RMSNorm weights 1, biases 0. The safetensors file is streamed to disk through
 * two 32 MiB buffers, one being filled in parallel while the other is written, so memory use does not
 * grow with the model.
 *
 * <p>The output appears atomically: everything is written into a sibling directory
 * {@code .NAME.partial-<random>}, forced to disk, and renamed into place; on any failure (an exception,
 * a full disk, a throwing {@link Progress}, the JVM shutting down) that directory is deleted.
 */
public final class SyntheticCheckpoints {

    /** The files a synthetic checkpoint holds. */
    public static final List<String> FILES = List.of(ModelConfig.CONFIG_FILE, GenerationConfig.FILE, "tokenizer.json",
            WeightStore.SINGLE_FILE);

    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .enable(SerializationFeature.INDENT_OUTPUT)
            .build();

    /** Bytes per I/O buffer; a multiple of every dtype's chunk size. */
    private static final int BUFFER_BYTES = 32 << 20;

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
            Objects.requireNonNull(shape, "shape");
            String json = SHAPES.get(shape);
            if (json == null) {
                throw new TandemException("unknown shape \"" + shape + "\" (known shapes: "
                        + String.join(", ", SHAPES.keySet()) + ").");
            }
            return ofConfigJson(shape, json, dtype, seed);
        }

        /**
         * The {@code config.json}-format file {@code file} (any name).
         *
         * @throws TandemException when the file cannot be read or {@link ModelConfig} rejects it; the
         *                         message names the file
         */
        public static Spec ofConfigFile(Path file, DType dtype, long seed) {
            String json;
            try {
                json = Files.readString(file);
            } catch (NoSuchFileException e) {
                throw new TandemException("config file not found: " + file + ".");
            } catch (IOException e) {
                throw new TandemException("could not read config file " + file + " (" + e.getMessage() + ").", e);
            }
            return ofConfigJson(file.toString(), json, dtype, seed);
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

    /**
     * Parses {@code configJson} with {@link ModelConfig#load} (which reads a directory, so through a
     * temporary one), naming {@code label} instead of {@code config.json} in its messages.
     */
    private static ModelConfig parse(String label, String configJson) {
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
                deleteTree(tmp);
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

    /** Safetensors metadata, as transformers' {@code save_pretrained} writes it. */
    private static final Map<String, String> METADATA = Map.of("format", "pt");

    /** The bytes of {@code model.safetensors} for {@code spec}. */
    public static long safetensorsBytes(Spec spec) {
        try {
            return SafetensorsWriter.fileSize(tensors(spec), METADATA);
        } catch (IllegalArgumentException e) {
            throw new TandemException(spec.label() + ": " + e.getMessage(), e);
        }
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
        String torchDtype = switch (spec.dtype()) {
            case F32 -> "float32";
            case BF16 -> "bfloat16";
            case F16 -> "float16";
        };
        try {
            ObjectNode config = (ObjectNode) JSON.readTree(spec.configJson());
            config.put("bos_token_id", eot);
            config.put("eos_token_id", eot);
            config.put("torch_dtype", torchDtype);
            ObjectNode gen = JSON.createObjectNode();
            gen.put("bos_token_id", eot);
            gen.put("eos_token_id", eot);
            return new SmallFiles(jsonBytes(config), jsonBytes(gen), SyntheticTokenizer.json(c.vocabSize()));
        } catch (JsonProcessingException e) {
            throw new TandemException(spec.label() + " is not valid JSON.", e); // ModelConfig accepted it: unreachable
        }
    }

    private static byte[] jsonBytes(JsonNode n) throws JsonProcessingException {
        String s = JSON.writeValueAsString(n) + "\n";
        return s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    // ------------------------------------------------------------------------------------------------
    // Writing

    /** What {@link #write} produced. */
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
        Objects.requireNonNull(progress, "progress");
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        Path out = outDir.toAbsolutePath().normalize();
        Path parent = out.getParent();
        if (parent == null || out.getFileName() == null) {
            throw new TandemException("cannot write a checkpoint to " + outDir + ": it has no parent directory.");
        }
        checkTarget(out, replace);

        List<Planned> plan = plan(spec.config(), spec.dtype());
        SmallFiles small = smallFiles(spec);
        long stBytes = safetensorsBytes(spec);
        long total = stBytes + small.config.length + small.generation.length + small.tokenizer.length;

        try {
            Files.createDirectories(parent);
        } catch (IOException e) {
            throw new TandemException("could not create the directory " + parent + " (" + e.getMessage() + ").", e);
        }
        checkSpace(parent, total);

        Path tmp = parent.resolve("." + out.getFileName() + ".partial-" + randomSuffix());
        CountDownLatch cleanedUp = new CountDownLatch(1);
        Cancellation cancel = new Cancellation();
        Thread hook = new Thread(() -> {
            cancel.cancelled = true;
            try {
                cleanedUp.await(10, TimeUnit.SECONDS); // let the writer stop and clean up itself
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
            deleteTree(tmp);
        }, "tandem-synth-cleanup");
        Runtime.getRuntime().addShutdownHook(hook);
        boolean moved = false;
        try {
            try {
                Files.createDirectory(tmp);
            } catch (IOException e) {
                throw new TandemException("could not create " + tmp + " (" + e.getMessage() + ").", e);
            }
            long[] done = {0};
            progress.update(0, total);
            for (var f : List.of(Map.entry(ModelConfig.CONFIG_FILE, small.config),
                    Map.entry(GenerationConfig.FILE, small.generation), Map.entry("tokenizer.json", small.tokenizer))) {
                cancel.check();
                writeSmall(tmp.resolve(f.getKey()), f.getValue());
                done[0] += f.getValue().length;
                progress.update(done[0], total);
            }
            writeWeights(tmp.resolve(WeightStore.SINGLE_FILE), plan, spec, threads, cancel, n -> {
                done[0] += n;
                progress.update(done[0], total);
            });
            cancel.check();
            forceDirectory(tmp);
            moveIntoPlace(tmp, out, replace);
            moved = true;
            forceDirectory(parent);
            return new Result(out, total, plan.size(), parameterCount(spec.config()));
        } finally {
            if (!moved) {
                deleteTree(tmp);
            }
            cleanedUp.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running or about to; it finds the directory gone
            }
        }
    }

    /** Set by the shutdown hook; the writer checks it between buffers. */
    private static final class Cancellation {
        volatile boolean cancelled;

        void check() {
            if (cancelled) {
                throw new TandemException("synth was interrupted (the JVM is shutting down); nothing was written.");
            }
        }
    }

    private static void checkTarget(Path out, boolean replace) {
        if (!Files.exists(out, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        if (!Files.isDirectory(out, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            throw new TandemException("the output " + out + " exists and is not a directory; it was left as it is.");
        }
        if (!replace) {
            throw new TandemException("the output directory " + out + " already exists and was left as it is"
                    + " (use --force to replace it).");
        }
        boolean empty;
        try (var s = Files.list(out)) {
            empty = s.findAny().isEmpty();
        } catch (IOException e) {
            throw new TandemException("could not read the output directory " + out + " (" + e.getMessage() + ").", e);
        }
        if (!empty && !Files.exists(out.resolve(ModelConfig.CONFIG_FILE))) {
            throw new TandemException("refusing to replace " + out + ": it is not empty and has no "
                    + ModelConfig.CONFIG_FILE + ", so it does not look like a model directory.");
        }
    }

    private static void checkSpace(Path dir, long needed) {
        long free;
        try {
            FileStore store = Files.getFileStore(dir);
            free = store.getUsableSpace();
        } catch (IOException e) {
            return; // cannot tell; a full disk still fails cleanly while writing
        }
        if (free < needed) {
            throw new TandemException("not enough free space in " + dir + ": the checkpoint needs "
                    + Progress.formatBytes(needed) + " but only " + Progress.formatBytes(free) + " is available.");
        }
    }

    private static String randomSuffix() {
        byte[] b = new byte[6];
        new SecureRandom().nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    private static void writeSmall(Path file, byte[] bytes) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) {
                ch.write(b);
            }
            ch.force(true);
        } catch (IOException e) {
            throw new TandemException("could not write " + file + " (" + e.getMessage() + ").", e);
        }
    }

    private static void forceDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // not every platform can sync a directory; the files themselves are synced
        }
    }

    private static void moveIntoPlace(Path tmp, Path out, boolean replace) {
        try {
            if (replace && Files.exists(out, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                Path old = out.resolveSibling("." + out.getFileName() + ".old-" + randomSuffix());
                Files.move(out, old, StandardCopyOption.ATOMIC_MOVE);
                try {
                    Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
                } catch (IOException e) {
                    Files.move(old, out, StandardCopyOption.ATOMIC_MOVE);
                    throw e;
                }
                deleteTree(old);
            } else {
                if (Files.exists(out, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                    throw new TandemException("the output directory " + out + " appeared while synth was writing;"
                            + " it was left as it is.");
                }
                Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
            }
        } catch (AtomicMoveNotSupportedException e) {
            throw new TandemException("could not move " + tmp + " to " + out + " atomically (" + e.getMessage() + ").", e);
        } catch (IOException e) {
            throw new TandemException("could not move " + tmp + " to " + out + " (" + e + ").", e);
        }
    }

    /** Deletes {@code root} and everything below it, as far as possible; never throws. */
    static void deleteTree(Path root) {
        for (int attempt = 0; attempt < 3 && Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS); attempt++) {
            try {
                Files.walkFileTree(root, new SimpleFileVisitor<>() {
                    @Override
                    public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                        Files.deleteIfExists(file);
                        return FileVisitResult.CONTINUE;
                    }

                    @Override
                    public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
                        Files.deleteIfExists(dir);
                        return FileVisitResult.CONTINUE;
                    }
                });
            } catch (IOException | UncheckedIOException ignored) {
                // another try, in case a file appeared while walking
            }
        }
    }

    // ------------------------------------------------------------------------------------------------
    // The safetensors file

    /** A run of whole chunks of one tensor that fits one buffer. */
    private record Piece(Planned tensor, long tensorKey, long firstElement, long elements, boolean first, boolean last) {
    }

    private static List<Piece> pieces(List<Planned> plan, long seed, int bytesPerElement) {
        long perBuffer = (long) BUFFER_BYTES / bytesPerElement; // a multiple of CHUNK_ELEMENTS
        List<Piece> out = new ArrayList<>();
        for (Planned p : plan) {
            long n = p.info().elementCount();
            long key = WeightFill.tensorKey(seed, p.info().name());
            if (n == 0) {
                out.add(new Piece(p, key, 0, 0, true, true));
                continue;
            }
            for (long start = 0; start < n; start += perBuffer) {
                long len = Math.min(perBuffer, n - start);
                out.add(new Piece(p, key, start, len, start == 0, start + len == n));
            }
        }
        return out;
    }

    private static void fill(Piece piece, MemorySegment buffer, DType dtype) {
        int chunks = (int) ((piece.elements() + WeightFill.CHUNK_ELEMENTS - 1) / WeightFill.CHUNK_ELEMENTS);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            long first = (long) c * WeightFill.CHUNK_ELEMENTS;
            int count = (int) Math.min(WeightFill.CHUNK_ELEMENTS, piece.elements() - first);
            MemorySegment dst = buffer.asSlice(first * dtype.byteSize(), (long) count * dtype.byteSize());
            WeightFill.fillChunk(dst, piece.tensor().init(), dtype, piece.tensorKey(), piece.firstElement() + first, count);
        });
    }

    /**
     * Streams the tensors into {@code file}: while buffer k is written on this thread, buffer k+1 is
     * filled on the pool.
     */
    private static void writeWeights(Path file, List<Planned> plan, Spec spec, int threads, Cancellation cancel,
                                     java.util.function.LongConsumer written) {
        DType dtype = spec.dtype();
        List<Piece> pieces = pieces(plan, spec.seed(), dtype.byteSize());
        List<TensorInfo> infos = plan.stream().map(Planned::info).toList();
        ForkJoinPool pool = new ForkJoinPool(threads);
        Arena arena = Arena.ofShared();
        Future<?> pending = null;
        try (SafetensorsWriter.StreamingWriter w = SafetensorsWriter.open(file, infos, METADATA)) {
            written.accept(w.bytesWritten());
            MemorySegment[] buffers = {arena.allocate(BUFFER_BYTES, 64), arena.allocate(BUFFER_BYTES, 64)};
            pending = pieces.isEmpty() ? null : pool.submit(() -> fill(pieces.getFirst(), buffers[0], dtype));
            for (int k = 0; k < pieces.size(); k++) {
                await(pending);
                pending = null;
                cancel.check();
                if (k + 1 < pieces.size()) {
                    Piece next = pieces.get(k + 1);
                    MemorySegment nextBuffer = buffers[(k + 1) & 1];
                    pending = pool.submit(() -> fill(next, nextBuffer, dtype));
                }
                Piece p = pieces.get(k);
                if (p.first()) {
                    w.beginTensor(p.tensor().info().name());
                }
                long bytes = p.elements() * dtype.byteSize();
                w.append(buffers[k & 1].asSlice(0, bytes).asByteBuffer());
                if (p.last()) {
                    w.endTensor();
                }
                written.accept(bytes);
            }
            w.finish();
        } finally {
            pool.shutdownNow();
            try {
                if (pending != null) {
                    pending.cancel(true);
                }
                // The arena may only be freed once no task touches its buffers.
                if (pool.awaitTermination(1, TimeUnit.MINUTES)) {
                    arena.close();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static void await(Future<?> f) {
        if (f == null) {
            return;
        }
        try {
            f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new TandemException("synth was interrupted; nothing was written.", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException r) {
                throw r;
            }
            if (c instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(c);
        }
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
