package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.config.RopeScaling;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A GGUF file as a Tandem model: the {@link ModelConfig} and {@link GenerationConfig} its metadata gives
 * (architectures {@code llama}, {@code mistral}, {@code qwen2}, {@code qwen3}), and its tensors under the Hugging Face
 * names {@code LlamaModel} asks for ({@code blk.3.attn_q.weight} → {@code model.layers.3.self_attn.q_proj.weight}).
 *
 * <p>llama.cpp's converter reorders the rows of each head of a Llama or Mistral q and k projection for its rope
 * ({@link RopeRowOrder}). Those tensors are served from memory of their own, copied back into Hugging Face's order
 * row by row (a row is whole blocks, so nothing is decoded), so that the logits of a GGUF file equal those of the
 * safetensors directory it was converted from bit for bit; every other tensor is a view of the file.
 */
public final class GgufCheckpoint implements WeightFile {

    public static final String ARCHITECTURE = "general.architecture";
    /** The architectures Tandem reads, as {@code general.architecture} names them. */
    public static final List<String> SUPPORTED_ARCHITECTURES = List.of("llama", "mistral", "qwen2", "qwen3");

    /** GGUF tensor name (block-relative part) → Hugging Face name (layer-relative part). */
    private static final Map<String, String> BLOCK_NAMES = Map.ofEntries(
            Map.entry("attn_norm.weight", "input_layernorm.weight"),
            Map.entry("attn_q.weight", "self_attn.q_proj.weight"), Map.entry("attn_q.bias", "self_attn.q_proj.bias"),
            Map.entry("attn_k.weight", "self_attn.k_proj.weight"), Map.entry("attn_k.bias", "self_attn.k_proj.bias"),
            Map.entry("attn_v.weight", "self_attn.v_proj.weight"), Map.entry("attn_v.bias", "self_attn.v_proj.bias"),
            Map.entry("attn_output.weight", "self_attn.o_proj.weight"), Map.entry("attn_output.bias", "self_attn.o_proj.bias"),
            Map.entry("attn_q_norm.weight", "self_attn.q_norm.weight"), Map.entry("attn_k_norm.weight", "self_attn.k_norm.weight"),
            Map.entry("ffn_norm.weight", "post_attention_layernorm.weight"),
            Map.entry("ffn_gate.weight", "mlp.gate_proj.weight"), Map.entry("ffn_gate.bias", "mlp.gate_proj.bias"),
            Map.entry("ffn_up.weight", "mlp.up_proj.weight"), Map.entry("ffn_up.bias", "mlp.up_proj.bias"),
            Map.entry("ffn_down.weight", "mlp.down_proj.weight"), Map.entry("ffn_down.bias", "mlp.down_proj.bias"));
    private static final Map<String, String> TOP_NAMES = Map.of(
            "token_embd.weight", "model.embed_tokens.weight",
            "output_norm.weight", "model.norm.weight",
            "output.weight", "lm_head.weight");
    private static final Pattern GGUF_BLOCK = Pattern.compile("blk\\.(\\d+)\\.(.+)");
    private static final Pattern HF_LAYER = Pattern.compile("model\\.layers\\.(\\d+)\\.(.+)");

    private final GgufFile file;
    private final String fileName;
    private final ModelConfig config;
    private final GenerationConfig generation;
    /** Hugging Face name → GGUF name, in file order. */
    private final Map<String, String> hfToGguf;
    /** Hugging Face names whose rows are reordered back from llama.cpp's rope order. */
    private final Set<String> reordered;
    /** Their copies in Hugging Face order, made on first use. */
    private final Map<String, Tensor> copies = new ConcurrentHashMap<>();
    private final Arena copiesArena = Arena.ofShared();
    private final AtomicBoolean closed = new AtomicBoolean();

    private GgufCheckpoint(GgufFile file, ModelConfig config, GenerationConfig generation, Map<String, String> hfToGguf,
                           Set<String> reordered) {
        this.file = file;
        this.fileName = file.path().getFileName().toString();
        this.config = config;
        this.generation = generation;
        this.hfToGguf = hfToGguf;
        this.reordered = reordered;
    }

    /** Whether {@code path} names a GGUF file (by its name: {@code .gguf}, any case), which need not exist. */
    public static boolean isGgufPath(Path path) {
        Path name = path.getFileName();
        return name != null && name.toString().toLowerCase(Locale.ROOT).endsWith(".gguf") && !Files.isDirectory(path);
    }

    /**
     * Opens {@code file}, reads its model configuration and maps its tensor names; with {@code resident}, the tensor
     * data is copied into memory of its own ({@link GgufFile#open(Path, boolean)}).
     *
     * @throws TandemException when the file is malformed, its architecture is not supported, or a hyperparameter
     *                         is missing or invalid
     */
    public static GgufCheckpoint open(Path file, boolean resident) {
        GgufFile f = GgufFile.open(file, resident);
        try {
            ModelConfig config = config(f);
            Map<String, String> names = new LinkedHashMap<>();
            for (String g : f.names()) {
                String hf = hfName(g);
                names.put(hf == null ? g : hf, g);
            }
            Set<String> reordered = new java.util.HashSet<>();
            if (ropeRowsReordered(config.modelType())) {
                for (int l = 0; l < config.numLayers(); l++) {
                    for (String proj : List.of("q_proj", "k_proj")) {
                        for (String kind : List.of("weight", "bias")) {
                            String n = "model.layers." + l + ".self_attn." + proj + "." + kind;
                            if (names.containsKey(n)) {
                                reordered.add(n);
                            }
                        }
                    }
                }
            }
            return new GgufCheckpoint(f, config, generation(f.metadata()), Collections.unmodifiableMap(names),
                    Collections.unmodifiableSet(reordered));
        } catch (RuntimeException e) {
            f.close();
            throw e;
        }
    }

    /** Whether llama.cpp reorders q and k rows for {@code modelType} (Llama and Mistral), undone at load, done at export. */
    public static boolean ropeRowsReordered(String modelType) {
        return modelType.equals("llama") || modelType.equals("mistral");
    }

    /** The Hugging Face name of GGUF tensor {@code ggufName}, or null when it has none (e.g. {@code rope_freqs.weight}). */
    public static String hfName(String ggufName) {
        String top = TOP_NAMES.get(ggufName);
        if (top != null) {
            return top;
        }
        Matcher m = GGUF_BLOCK.matcher(ggufName);
        if (m.matches() && BLOCK_NAMES.containsKey(m.group(2))) {
            return "model.layers." + m.group(1) + "." + BLOCK_NAMES.get(m.group(2));
        }
        return null;
    }

    /** The GGUF name of Hugging Face tensor {@code hfName}, or null when llama.cpp has none for it. */
    public static String ggufName(String hfName) {
        for (Map.Entry<String, String> e : TOP_NAMES.entrySet()) {
            if (e.getValue().equals(hfName)) {
                return e.getKey();
            }
        }
        Matcher m = HF_LAYER.matcher(hfName);
        if (m.matches()) {
            for (Map.Entry<String, String> e : BLOCK_NAMES.entrySet()) {
                if (e.getValue().equals(m.group(2))) {
                    return "blk." + m.group(1) + "." + e.getKey();
                }
            }
        }
        return null;
    }

    // ---- configuration ----

    /** Metadata reads that fail with a sentence naming the file and the key. */
    private record Meta(String file, Map<String, GgufValue> values) {
        TandemException error(String key, String detail) {
            return new TandemException(file + ": metadata " + key + " " + detail + ".");
        }

        boolean has(String key) {
            return values.containsKey(key);
        }

        String string(String key) {
            GgufValue v = values.get(key);
            if (v == null) {
                throw error(key, "is missing");
            }
            if (v.type() != GgufValue.Type.STRING) {
                throw error(key, "is " + v.describe() + ", not a string");
            }
            return (String) v.value();
        }

        Long integerOrNull(String key) {
            GgufValue v = values.get(key);
            if (v == null) {
                return null;
            }
            if (v.integerOrNull() == null) {
                throw error(key, "is " + v.describe() + ", not an integer");
            }
            return v.integerOrNull();
        }

        int positiveInt(String key, Integer otherwise) {
            Long v = integerOrNull(key);
            if (v == null && otherwise == null) {
                throw error(key, "is missing");
            }
            long n = v == null ? otherwise : v;
            if (n <= 0 || n > Integer.MAX_VALUE) {
                throw error(key, "is " + (v == null ? n : values.get(key).describe()) + ", but must be a positive 32-bit integer");
            }
            return (int) n;
        }

        Integer tokenIdOrNull(String key) {
            Long v = integerOrNull(key);
            if (v != null && (v < 0 || v > Integer.MAX_VALUE)) {
                throw error(key, "is " + values.get(key).describe() + ", which is not a token id");
            }
            return v == null ? null : v.intValue();
        }

        double positiveNumber(String key, double otherwise) {
            GgufValue v = values.get(key);
            if (v == null) {
                return otherwise;
            }
            Double d = v.numberOrNull();
            if (d == null || !(d > 0) || !Double.isFinite(d)) {
                throw error(key, "is " + v.describe() + ", but must be a positive number");
            }
            return d;
        }
    }

    /**
     * The {@link ModelConfig} the metadata of {@code f} gives, as a config.json of the same model would: hparams under
     * {@code {arch}.*}, biases and q/k norms by the tensors present, tied embeddings when {@code output.weight} is
     * absent.
     */
    static ModelConfig config(GgufFile f) {
        Meta m = new Meta(f.path().getFileName().toString(), f.metadata());
        String arch = m.string(ARCHITECTURE);
        if (!SUPPORTED_ARCHITECTURES.contains(arch)) {
            throw m.error(ARCHITECTURE, "is \"" + arch + "\", which Tandem does not run (it runs "
                    + String.join(", ", SUPPORTED_ARCHITECTURES) + ")");
        }
        String p = arch + ".";
        int hidden = m.positiveInt(p + "embedding_length", null);
        int layers = m.positiveInt(p + "block_count", null);
        int intermediate = m.positiveInt(p + "feed_forward_length", null);
        int heads = m.positiveInt(p + "attention.head_count", null);
        int kvHeads = m.positiveInt(p + "attention.head_count_kv", heads);
        if (heads % kvHeads != 0) {
            throw m.error(p + "attention.head_count", "(" + heads + ") is not a multiple of " + p + "attention.head_count_kv ("
                    + kvHeads + ")");
        }
        if (!m.has(p + "attention.key_length") && hidden % heads != 0) {
            throw m.error(p + "embedding_length", "(" + hidden + ") is not a multiple of " + p + "attention.head_count ("
                    + heads + "), and " + p + "attention.key_length is not given");
        }
        int headDim = m.positiveInt(p + "attention.key_length", hidden / heads);
        if (headDim % 2 != 0) {
            throw m.error(p + "attention.key_length", "is " + headDim + ", but must be even for rotary embeddings");
        }
        int valueDim = m.positiveInt(p + "attention.value_length", headDim);
        if (valueDim != headDim) {
            throw m.error(p + "attention.value_length", "is " + valueDim + ", but Tandem needs it equal to the key length ("
                    + headDim + ")");
        }
        int ropeDims = m.positiveInt(p + "rope.dimension_count", headDim);
        if (ropeDims != headDim) {
            throw m.error(p + "rope.dimension_count", "is " + ropeDims + ", but Tandem rotates the whole head (" + headDim + ")");
        }
        List<String> tokens = stringArray(m, "tokenizer.ggml.tokens");
        Integer vocabKey = m.has(p + "vocab_size") ? m.positiveInt(p + "vocab_size", null) : null;
        int vocab = vocabKey != null ? vocabKey : tokens != null ? tokens.size() : -1;
        if (vocab <= 0) {
            throw m.error(p + "vocab_size", "is missing, and so is the token list tokenizer.ggml.tokens");
        }
        int context = m.positiveInt(p + "context_length", null);
        double eps = m.positiveNumber(p + "attention.layer_norm_rms_epsilon", 1e-5);
        double theta = m.positiveNumber(p + "rope.freq_base", 10000.0);
        RopeScaling scaling = ropeScaling(m, p, f);

        boolean qkvBias = f.contains("blk.0.attn_q.bias");
        boolean outputBias = f.contains("blk.0.attn_output.bias");
        boolean mlpBias = f.contains("blk.0.ffn_gate.bias");
        boolean qkNorm = f.contains("blk.0.attn_q_norm.weight");
        boolean tied = !f.contains("output.weight");
        Integer bos = m.tokenIdOrNull("tokenizer.ggml.bos_token_id");
        List<Integer> eos = eosIds(m);
        // The family decides what LlamaModel expects (qwen2 always has q/k/v biases, qwen3 always q/k norms).
        if (arch.equals("qwen2")) {
            qkvBias = true;
        } else if (arch.equals("qwen3")) {
            qkNorm = true;
        }
        return new ModelConfig(arch, vocab, hidden, intermediate, layers, heads, kvHeads, headDim, context, eps, theta,
                scaling, tied, qkvBias, outputBias, mlpBias, qkNorm, "silu", bos, eos, true, null, null, null, Map.of());
    }

    /** Linear scaling from {@code rope.scaling.*}; llama3 scaling from Tandem's own keys, written beside rope_freqs. */
    private static RopeScaling ropeScaling(Meta m, String p, GgufFile f) {
        if (m.has(TandemKeys.LLAMA3_FACTOR)) {
            Long original = m.integerOrNull(TandemKeys.LLAMA3_ORIGINAL_CONTEXT);
            if (original == null || original <= 0 || original > Integer.MAX_VALUE) {
                throw m.error(TandemKeys.LLAMA3_ORIGINAL_CONTEXT, "is missing or not a positive integer");
            }
            double low = m.positiveNumber(TandemKeys.LLAMA3_LOW_FREQ_FACTOR, Double.NaN);
            double high = m.positiveNumber(TandemKeys.LLAMA3_HIGH_FREQ_FACTOR, Double.NaN);
            if (!(high > low)) {
                throw m.error(TandemKeys.LLAMA3_HIGH_FREQ_FACTOR, "must be greater than " + TandemKeys.LLAMA3_LOW_FREQ_FACTOR);
            }
            return RopeScaling.llama3(m.positiveNumber(TandemKeys.LLAMA3_FACTOR, 1), low, high, original.intValue());
        }
        if (f.contains("rope_freqs.weight")) {
            throw new TandemException(m.file() + ": the tensor rope_freqs.weight scales the rotary frequencies (Llama 3.1's"
                    + " rope scaling, as llama.cpp writes it), which Tandem cannot read yet; convert the Hugging Face"
                    + " checkpoint with tandem instead.");
        }
        String typeKey = p + "rope.scaling.type";
        if (!m.has(typeKey)) {
            return null;
        }
        String type = m.string(typeKey);
        double factor = m.positiveNumber(p + "rope.scaling.factor", 1.0);
        return switch (type) {
            case "none" -> null;
            case "linear" -> factor == 1.0 ? null : RopeScaling.linear(factor);
            default -> throw m.error(typeKey, "is \"" + type + "\", which Tandem does not support (supported: none, linear)");
        };
    }

    /** Tandem's own metadata keys (llama.cpp ignores keys it does not know). */
    static final class TandemKeys {
        static final String LLAMA3_FACTOR = "tandem.rope.llama3.factor";
        static final String LLAMA3_LOW_FREQ_FACTOR = "tandem.rope.llama3.low_freq_factor";
        static final String LLAMA3_HIGH_FREQ_FACTOR = "tandem.rope.llama3.high_freq_factor";
        static final String LLAMA3_ORIGINAL_CONTEXT = "tandem.rope.llama3.original_context_length";

        private TandemKeys() {
        }
    }

    private static List<String> stringArray(Meta m, String key) {
        GgufValue v = m.values().get(key);
        if (v == null) {
            return null;
        }
        if (v.type() != GgufValue.Type.ARRAY || v.elementType() != GgufValue.Type.STRING) {
            throw m.error(key, "is " + v.describe() + ", not an array of strings");
        }
        return v.elements().stream().map(e -> (String) e.value()).toList();
    }

    /** EOS, then llama.cpp's end-of-turn and end-of-message ids where they differ: each ends a generation. */
    private static List<Integer> eosIds(Meta m) {
        List<Integer> ids = new ArrayList<>();
        for (String key : List.of("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id")) {
            Integer id = m.tokenIdOrNull(key);
            if (id != null && !ids.contains(id)) {
                ids.add(id);
            }
        }
        return ids;
    }

    /** BOS and EOS from the tokenizer metadata; a GGUF file has no sampling defaults. */
    static GenerationConfig generation(Map<String, GgufValue> metadata) {
        Meta m = new Meta("", metadata);
        return new GenerationConfig(eosIds(m), m.tokenIdOrNull("tokenizer.ggml.bos_token_id"), null, null, null, null,
                null, null, null);
    }

    public ModelConfig config() {
        return config;
    }

    public GenerationConfig generationConfig() {
        return generation;
    }

    /** Every metadata entry (the tokenizer's among them). */
    public Map<String, GgufValue> metadata() {
        return file.metadata();
    }

    public GgufFile file() {
        return file;
    }

    // ---- tensors under Hugging Face names ----

    @Override
    public Path path() {
        return file.path();
    }

    @Override
    public Set<String> names() {
        return hfToGguf.keySet();
    }

    @Override
    public Tensor tensor(String name) {
        String g = hfToGguf.get(name);
        if (g == null) {
            throw new TandemException(fileName + ": there is no tensor \"" + name + "\" (nor its GGUF name \""
                    + ggufName(name) + "\").");
        }
        if (closed.get()) {
            throw new IllegalStateException(fileName + " is closed");
        }
        return reordered.contains(name) ? copies.computeIfAbsent(name, n -> hfOrder(n, file.tensor(g))) : file.tensor(g);
    }

    /** A copy of {@code t} with each head's rows in Hugging Face's order. */
    private Tensor hfOrder(String name, Tensor t) {
        long[] shape = t.shape();
        int heads = name.contains(".q_proj.") ? config.numHeads() : config.numKvHeads();
        long rows = shape[0];
        if (shape.length > 2 || (shape.length == 1 && t.dtype().isQuantized()) || rows % heads != 0
                || (rows / heads) % 2 != 0) {
            throw new TandemException(fileName + ": tensor \"" + hfToGguf.get(name) + "\" has shape "
                    + java.util.Arrays.toString(shape) + ", which is not " + heads + " heads of rows to put back in"
                    + " Hugging Face's rope order.");
        }
        long rowBytes = shape.length == 1 ? t.dtype().bytesFor(1) : t.dtype().bytesFor(shape[1]);
        MemorySegment copy = copiesArena.allocate(Math.max(1, t.byteSize()), 64);
        RopeRowOrder.copyToHfOrder(t.segment(), copy, rows, rowBytes, heads);
        return Tensor.of(t.dtype(), copy, shape);
    }

    @Override
    public DType storedType(String name) {
        String g = hfToGguf.get(name);
        return g == null ? null : file.storedType(g);
    }

    @Override
    public long storedBytes(String name) {
        String g = hfToGguf.get(name);
        return g == null ? 0 : file.storedType(g).bytesFor(Tensor.elementCount(file.info(g).shape()));
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            file.close();
            copiesArena.close();
        }
    }

    @Override
    public String toString() {
        return "GgufCheckpoint[" + file.path() + ", " + config.modelType() + ", " + hfToGguf.size() + " tensors]";
    }
}
