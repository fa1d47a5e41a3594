package dev.tandem.transformer.synth;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.synth.CheckpointWriter.ChunkFill;
import dev.tandem.transformer.synth.CheckpointWriter.Computed;
import dev.tandem.transformer.synth.CheckpointWriter.SmallFile;
import dev.tandem.transformer.tokenizer.Tokenizers;
import dev.tandem.transformer.weights.SafetensorsWriter.TensorInfo;
import dev.tandem.transformer.weights.WeightStore;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A trained checkpoint grown into a larger shape that computes the same function, for benchmarks that
 * need a big, memory-bound target whose drafts are really accepted: the source's weights zero-padded to
 * hidden size D, MLP width I and N layers (from a named shape or any {@code config.json}), keeping the
 * source's vocabulary, head_dim, RoPE, context, special ids, tying, biases and model type.
 *
 * <p>With source sizes d, i, L layers, H query and Hkv key/value heads (group g = H/Hkv), and target
 * Ht = D/head_dim query heads over the shape's Htkv key/value heads (group G = Ht/Htkv):
 * <pre>
 *   hidden [0,d) → [0,d), MLP [0,i) → [0,i), KV head j → j, query head h → (h / g)·G + h % g
 *   rmsnorm weights (input, post-attention, final) · √(d/D),  rms_norm_eps · d/D
 *   layers L … N−1 all zero (zero o_proj and down_proj: the identity on the residual stream)
 * </pre>
 * The zero hidden dims add nothing to a row's sum of squares, so
 * rsqrt(ss/D + eps·d/D) = √(D/d)·rsqrt(ss/d + eps), and the scaled weights give back the source's
 * normalised values. A zero query head attends uniformly, but its o_proj columns are zero; extra KV
 * heads have zero K and V. Everything else of the target is zero. Qwen3's q/k norms (over head_dim) are
 * copied; they see the smaller eps too, which moves a head's scale by about eps·(1 − d/D) / (2·mean(q²)),
 * far below float32 rounding for trained weights. (Scaling q_proj and k_proj by √(d/D) would cancel it
 * exactly, but costs a rounding of every q/k weight in bf16 output, which is larger.)
 *
 * <pre>{@code
 * var spec = PaddedCheckpoints.Spec.ofShape(Path.of("models/bard-l"), "tinyllama-1.1b", DType.BF16);
 * PaddedCheckpoints.write(spec, Path.of("/tmp/bard-l-1b"), false, Progress.NONE);
 * }</pre>
 *
 * <p>The source is read memory-mapped ({@link WeightStore}, any of f32/bf16/f16) and the output is
 * streamed and appears atomically through {@link CheckpointWriter}, like a synthetic checkpoint.
 */
public final class PaddedCheckpoints {

    private PaddedCheckpoints() {
    }

    /**
     * What to write: a source checkpoint, the shape it grows into and the weight dtype. Making one reads
     * the source's {@code config.json} and checks that the shape can hold it. Immutable.
     */
    public static final class Spec {
        private final Path source;
        private final ModelConfig sourceConfig;
        private final String label;
        private final String configJson;
        private final ModelConfig config;
        private final DType dtype;

        private Spec(Path source, ModelConfig sourceConfig, String label, String configJson, ModelConfig config,
                     DType dtype) {
            this.source = source;
            this.sourceConfig = sourceConfig;
            this.label = label;
            this.configJson = configJson;
            this.config = config;
            this.dtype = dtype;
        }

        /**
         * {@code source} grown to the hidden size, MLP width, layer count and KV heads of one of
         * {@link SyntheticCheckpoints#shapeNames()}.
         *
         * @throws TandemException for an unknown shape, a source the loader rejects, or a shape that
         *                         cannot hold the source (the message names the field)
         */
        public static Spec ofShape(Path source, String shape, DType dtype) {
            return ofConfigJson(source, shape, SyntheticCheckpoints.shapeJson(shape), dtype);
        }

        /** Like {@link #ofShape}, with the shape from the {@code config.json}-format file {@code file}. */
        public static Spec ofConfigFile(Path source, Path file, DType dtype) {
            return ofConfigJson(source, file.toString(), SyntheticCheckpoints.readConfigFile(file), dtype);
        }

        /** Like {@link #ofShape}, with the shape given as {@code config.json} text named {@code label}. */
        public static Spec ofConfigJson(Path source, String label, String shapeJson, DType dtype) {
            Objects.requireNonNull(source, "source");
            Objects.requireNonNull(label, "label");
            Objects.requireNonNull(shapeJson, "shapeJson");
            Objects.requireNonNull(dtype, "dtype");
            ModelConfig src = ModelConfig.load(source);
            ModelConfig shape = SyntheticCheckpoints.parse(label, shapeJson);
            checkFits(source, src, label, shape);
            String json = paddedConfigJson(source, src, shape);
            ModelConfig padded = SyntheticCheckpoints.parse("the padded config of " + source, json);
            return new Spec(source, src, label, json, padded, dtype);
        }

        /** The checkpoint being grown. */
        public Path source() {
            return source;
        }

        public ModelConfig sourceConfig() {
            return sourceConfig;
        }

        /** The shape name, or the config file or label it was made from. */
        public String label() {
            return label;
        }

        /** The padded checkpoint's configuration. */
        public ModelConfig config() {
            return config;
        }

        public DType dtype() {
            return dtype;
        }

        @Override
        public String toString() {
            Path name = source.toAbsolutePath().normalize().getFileName();
            return (name == null ? source : name) + " padded to " + label + " " + dtype.lowerName();
        }
    }

    /** Refuses, in one sentence naming the field, a shape whose layout cannot hold the source. */
    private static void checkFits(Path source, ModelConfig s, String label, ModelConfig t) {
        String cannot = "cannot pad " + source + " to " + label + ": ";
        int hd = s.headDim();
        if (t.hiddenSize() < s.hiddenSize()) {
            throw new TandemException(cannot + "its hidden_size " + t.hiddenSize() + " is smaller than the source's "
                    + s.hiddenSize() + ".");
        }
        if (t.hiddenSize() % hd != 0) {
            throw new TandemException(cannot + "its hidden_size " + t.hiddenSize()
                    + " is not a multiple of the source's head_dim " + hd + ".");
        }
        if (t.intermediateSize() < s.intermediateSize()) {
            throw new TandemException(cannot + "its intermediate_size " + t.intermediateSize()
                    + " is smaller than the source's " + s.intermediateSize() + ".");
        }
        if (t.numLayers() < s.numLayers()) {
            throw new TandemException(cannot + "its num_hidden_layers " + t.numLayers() + " is fewer than the source's "
                    + s.numLayers() + ".");
        }
        if (t.numKvHeads() < s.numKvHeads()) {
            throw new TandemException(cannot + "its num_key_value_heads " + t.numKvHeads()
                    + " is fewer than the source's " + s.numKvHeads() + ".");
        }
        int heads = t.hiddenSize() / hd;
        if (heads % t.numKvHeads() != 0) {
            throw new TandemException(cannot + "its hidden_size " + t.hiddenSize() + " makes " + heads
                    + " query heads of the source's head_dim " + hd + ", not a multiple of its num_key_value_heads "
                    + t.numKvHeads() + ".");
        }
        if (heads / t.numKvHeads() < s.groupSize()) {
            throw new TandemException(cannot + "its " + heads + " query heads over num_key_value_heads " + t.numKvHeads()
                    + " make groups of " + heads / t.numKvHeads() + ", smaller than the source's groups of "
                    + s.groupSize() + " (num_attention_heads / num_key_value_heads).");
        }
    }

    /** The source's {@code config.json} with the target's sizes and the scaled eps. */
    private static String paddedConfigJson(Path source, ModelConfig s, ModelConfig t) {
        Path file = source.resolve(ModelConfig.CONFIG_FILE);
        try {
            ObjectNode c = (ObjectNode) SyntheticCheckpoints.JSON.readTree(file.toFile());
            int heads = t.hiddenSize() / s.headDim();
            c.put("hidden_size", t.hiddenSize());
            c.put("intermediate_size", t.intermediateSize());
            c.put("num_hidden_layers", t.numLayers());
            c.put("num_attention_heads", heads);
            c.put("num_key_value_heads", t.numKvHeads());
            c.put("head_dim", s.headDim());
            c.put("rms_norm_eps", s.rmsNormEps() * s.hiddenSize() / t.hiddenSize());
            // Per-layer lists grow with the layers; the extra layers are the identity whatever their type.
            if (c.get("layer_types") instanceof ArrayNode types && !types.isEmpty()) {
                JsonNode last = types.get(types.size() - 1);
                while (types.size() < t.numLayers()) {
                    types.add(last.deepCopy());
                }
            }
            return SyntheticCheckpoints.JSON.writeValueAsString(c);
        } catch (IOException | ClassCastException e) {
            // ModelConfig.load read this file a moment ago
            throw new TandemException("could not read " + file + " (" + e.getMessage() + ").", e);
        }
    }

    /** The number of parameters of the padded checkpoint. */
    public static long parameterCount(Spec spec) {
        return SyntheticCheckpoints.parameterCount(spec.config());
    }

    /** The tensors of the padded checkpoint, in file order. */
    public static List<TensorInfo> tensors(Spec spec) {
        return SyntheticCheckpoints.plan(spec.config(), spec.dtype()).stream()
                .map(SyntheticCheckpoints.Planned::info).toList();
    }

    // ------------------------------------------------------------------------------------------------
    // Writing

    /**
     * Writes the padded checkpoint of {@code spec} to {@code outDir} using every processor:
     * {@code config.json}, the source's {@code generation_config.json} (if it has one) and tokenizer file,
     * and {@code model.safetensors} in {@code spec.dtype()} (bf16 and f16 rounded to nearest even).
     *
     * @param replace  whether an existing {@code outDir} may be replaced (never the source itself)
     * @param progress told the bytes written so far out of the total
     * @throws TandemException when the source is incomplete or unreadable (the loader's sentences), or as
     *                         {@link SyntheticCheckpoints#write} for the output; nothing is then left behind
     */
    public static SyntheticCheckpoints.Result write(Spec spec, Path outDir, boolean replace, Progress progress) {
        return write(spec, outDir, replace, progress, Runtime.getRuntime().availableProcessors());
    }

    /** {@link #write(Spec, Path, boolean, Progress)} on {@code threads} threads (the bytes do not depend on it). */
    public static SyntheticCheckpoints.Result write(Spec spec, Path outDir, boolean replace, Progress progress,
                                                    int threads) {
        Objects.requireNonNull(spec, "spec");
        Path source = spec.source();
        Path out = outDir.toAbsolutePath().normalize();
        if (out.equals(source.toAbsolutePath().normalize())) {
            throw new TandemException("the output directory " + out + " is the source checkpoint; choose another --out.");
        }
        GenerationConfig.load(source); // the loader's sentence for a broken one, before anything is written
        Path tokenizer = ModelLoader.tokenizerFile(source);
        Tokenizers.load(tokenizer);
        List<SmallFile> small = new ArrayList<>();
        small.add(new SmallFile(ModelConfig.CONFIG_FILE, configBytes(spec)));
        Path generation = source.resolve(GenerationConfig.FILE);
        if (Files.isRegularFile(generation)) {
            small.add(new SmallFile(GenerationConfig.FILE, readAll(generation)));
        }
        small.add(new SmallFile(tokenizer.getFileName().toString(), readAll(tokenizer)));

        try (WeightStore weights = WeightStore.open(source)) {
            List<Computed> tensors = computed(spec, weights);
            long bytes = CheckpointWriter.write(outDir, replace, progress, threads, small, tensors, spec.toString());
            return new SyntheticCheckpoints.Result(out, bytes, tensors.size(), parameterCount(spec));
        }
    }

    private static byte[] configBytes(Spec spec) {
        try {
            ObjectNode c = (ObjectNode) SyntheticCheckpoints.JSON.readTree(spec.configJson);
            c.put("torch_dtype", SyntheticCheckpoints.torchDtype(spec.dtype()));
            if (c.has("dtype")) {
                c.put("dtype", SyntheticCheckpoints.torchDtype(spec.dtype()));
            }
            return SyntheticCheckpoints.jsonBytes(c);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("the padded config is JSON written by this class", e);
        }
    }

    private static byte[] readAll(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new TandemException("could not read " + file + " (" + e.getMessage() + ").", e);
        }
    }

    /**
     * Each target tensor with how it is filled from the source. Every source tensor is fetched (and its
     * shape checked, with the loader's sentence) before anything is written.
     */
    private static List<Computed> computed(Spec spec, WeightStore weights) {
        ModelConfig s = spec.sourceConfig();
        ModelConfig t = spec.config();
        Map<String, Tensor> src = new HashMap<>();
        for (SyntheticCheckpoints.Planned p : SyntheticCheckpoints.plan(s, DType.F32)) {
            src.put(p.info().name(), weights.get(p.info().name(), p.info().shape()));
        }

        int[] vocab = prefix(t.vocabSize(), s.vocabSize());
        int[] hidden = prefix(t.hiddenSize(), s.hiddenSize());
        int[] mlp = prefix(t.intermediateSize(), s.intermediateSize());
        int[] kv = prefix(t.numKvHeads() * t.headDim(), s.numKvHeads() * s.headDim());
        int[] head = prefix(t.headDim(), s.headDim());
        int[] query = queryHeads(s, t);
        int[] one = {0};
        double norm = Math.sqrt((double) s.hiddenSize() / t.hiddenSize());

        List<Computed> out = new ArrayList<>();
        for (SyntheticCheckpoints.Planned p : SyntheticCheckpoints.plan(t, spec.dtype())) {
            String name = p.info().name();
            Tensor from = src.get(name);
            ChunkFill fill;
            if (from == null) {
                fill = ZERO; // a layer beyond the source's
            } else {
                String role = name.startsWith("model.layers.") ? name.substring(name.indexOf('.', 13) + 1) : name;
                fill = switch (role) {
                    case "model.embed_tokens.weight", "lm_head.weight" -> new Padding(from, vocab, hidden, 1.0);
                    case "model.norm.weight", "input_layernorm.weight", "post_attention_layernorm.weight" ->
                            new Padding(from, one, hidden, norm);
                    case "self_attn.q_proj.weight" -> new Padding(from, query, hidden, 1.0);
                    case "self_attn.q_proj.bias" -> new Padding(from, one, query, 1.0);
                    case "self_attn.k_proj.weight", "self_attn.v_proj.weight" -> new Padding(from, kv, hidden, 1.0);
                    case "self_attn.k_proj.bias", "self_attn.v_proj.bias" -> new Padding(from, one, kv, 1.0);
                    case "self_attn.q_norm.weight", "self_attn.k_norm.weight" -> new Padding(from, one, head, 1.0);
                    case "self_attn.o_proj.weight" -> new Padding(from, hidden, query, 1.0);
                    case "self_attn.o_proj.bias", "mlp.down_proj.bias" -> new Padding(from, one, hidden, 1.0);
                    case "mlp.gate_proj.weight", "mlp.up_proj.weight" -> new Padding(from, mlp, hidden, 1.0);
                    case "mlp.gate_proj.bias", "mlp.up_proj.bias" -> new Padding(from, one, mlp, 1.0);
                    case "mlp.down_proj.weight" -> new Padding(from, hidden, mlp, 1.0);
                    default -> throw new IllegalStateException("no padding rule for tensor " + name);
                };
            }
            out.add(new Computed(p.info(), fill));
        }
        return out;
    }

    /** Target index → source index along one axis: {@code [0, source)} kept, the rest −1 (zero). */
    private static int[] prefix(int target, int source) {
        int[] m = new int[target];
        for (int i = 0; i < target; i++) {
            m[i] = i < source ? i : -1;
        }
        return m;
    }

    /** q_proj rows / o_proj columns: source query head h lands on (h / g)·G + h % g, so it keeps its KV head. */
    private static int[] queryHeads(ModelConfig s, ModelConfig t) {
        int hd = s.headDim();
        int g = s.groupSize();
        int big = t.groupSize();
        int[] m = new int[t.numHeads() * hd];
        Arrays.fill(m, -1);
        for (int h = 0; h < s.numHeads(); h++) {
            int to = (h / g) * big + h % g;
            for (int k = 0; k < hd; k++) {
                m[to * hd + k] = h * hd + k;
            }
        }
        return m;
    }

    private static final ChunkFill ZERO = (dst, dtype, first, count) -> dst.fill((byte) 0);

    /**
     * A target tensor, viewed as {@code rows.length × cols.length} (a vector is one row), whose element
     * (r, c) is {@code scale · source[rows[r]][cols[c]]}, or 0 where either map is −1.
     */
    private static final class Padding implements ChunkFill {
        private final Tensor source;
        private final long sourceCols;
        private final int[] rows;
        private final long cols;
        private final int[] colTo;   // the target columns that come from the source, ascending
        private final int[] colFrom; // and their source columns
        private final double scale;

        Padding(Tensor source, int[] rows, int[] cols, double scale) {
            this.source = source;
            long[] shape = source.shape();
            this.sourceCols = shape[shape.length - 1];
            this.rows = rows;
            this.cols = cols.length;
            int n = 0;
            for (int c : cols) {
                n += c >= 0 ? 1 : 0;
            }
            colTo = new int[n];
            colFrom = new int[n];
            for (int c = 0, k = 0; c < cols.length; c++) {
                if (cols[c] >= 0) {
                    colTo[k] = c;
                    colFrom[k++] = cols[c];
                }
            }
            this.scale = scale;
        }

        @Override
        public void fill(MemorySegment dst, DType dtype, long first, int count) {
            dst.fill((byte) 0); // +0 in every dtype
            MemorySegment src = source.segment();
            DType srcType = source.dtype();
            long end = first + count;
            for (long r = first / cols; r < rows.length && r * cols < end; r++) {
                int from = rows[(int) r];
                if (from < 0) {
                    continue;
                }
                long at = r * cols - first; // index in dst of (r, 0)
                long base = from * sourceCols;
                for (int k = 0; k < colTo.length; k++) {
                    long e = at + colTo[k];
                    if (e >= 0 && e < count) {
                        dtype.write(dst, e, (float) (srcType.read(src, base + colFrom[k]) * scale));
                    }
                }
            }
        }
    }
}
