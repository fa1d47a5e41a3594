package dev.tandem.transformer.config;

import com.fasterxml.jackson.databind.JsonNode;
import dev.tandem.runtime.TandemException;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.List;
import java.util.Objects;

/**
 * The architecture of a decoder-only model, read from a Hugging Face {@code config.json} of model type
 * {@code llama}, {@code mistral}, {@code qwen2} or {@code qwen3}.
 *
 * <p>Absent keys take the defaults of the matching transformers configuration class
 * ({@code LlamaConfig}, {@code MistralConfig}, {@code Qwen2Config}, {@code Qwen3Config}); where those
 * classes differ, so does this record (for example {@code num_key_value_heads} defaults to
 * {@code num_attention_heads} for llama but to 8 for mistral and 32 for qwen2/qwen3, and {@code head_dim}
 * to 128 for qwen3). Biases follow the transformers modules, not the config alone: qwen2 always biases
 * q/k/v and never o_proj; mistral has no biases (its modules hard-code {@code bias=False}); llama biases
 * q/k/v/o with {@code attention_bias} and the MLP with {@code mlp_bias}; qwen3 biases q/k/v/o with
 * {@code attention_bias} and normalises q and k per head.
 *
 * @param modelType             "llama", "mistral", "qwen2" or "qwen3"
 * @param numLayers             {@code num_hidden_layers}
 * @param numHeads              {@code num_attention_heads}
 * @param numKvHeads            {@code num_key_value_heads}
 * @param headDim               {@code head_dim}, or hidden / heads; need not equal hidden / heads
 * @param ropeScaling           null for plain RoPE
 * @param qkvBias               q_proj, k_proj and v_proj carry biases
 * @param outputBias            o_proj carries a bias
 * @param mlpBias               gate_proj, up_proj and down_proj carry biases
 * @param qkNorm                RMSNorm over each head of q and k before RoPE (qwen3)
 * @param bosTokenId            null when the config names none
 * @param eosTokenIds           empty when the config names none
 * @param isCausal              {@code is_causal}, default true (false for bidirectional / diffusion models)
 * @param maskTokenId           {@code mask_token_id}: the token a masked-diffusion model fills a canvas with, else null
 * @param defaultedShapeKeys    the shape keys (sizes, layer and head counts) config.json left out, with the default
 *                              used for each; named in any shape error they may have caused ({@link #defaultsNote()})
 * @param slidingWindow         the attention window when some layer uses one, else null
 * @param torchDtype            {@code torch_dtype} (or {@code dtype}), informative only; may be null
 */
public record ModelConfig(
        String modelType,
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        int maxPositionEmbeddings,
        double rmsNormEps,
        double ropeTheta,
        RopeScaling ropeScaling,
        boolean tieWordEmbeddings,
        boolean qkvBias,
        boolean outputBias,
        boolean mlpBias,
        boolean qkNorm,
        String hiddenAct,
        Integer bosTokenId,
        List<Integer> eosTokenIds,
        boolean isCausal,
        Integer maskTokenId,
        Integer slidingWindow,
        String torchDtype,
        Map<String, Integer> defaultedShapeKeys) {

    public static final String CONFIG_FILE = "config.json";
    /** Model types {@link #load} accepts. */
    public static final List<String> SUPPORTED_MODEL_TYPES = List.of("llama", "mistral", "qwen2", "qwen3");

    public ModelConfig {
        Objects.requireNonNull(modelType, "modelType");
        Objects.requireNonNull(hiddenAct, "hiddenAct");
        eosTokenIds = List.copyOf(eosTokenIds);
        defaultedShapeKeys = defaultedShapeKeys == null ? Map.of() : Collections.unmodifiableMap(new LinkedHashMap<>(defaultedShapeKeys));
    }

    /**
     * What to add to a sentence about a weight whose shape disagrees with the config, when the config left
     * shape keys out and their defaults were used: such a mismatch is then most likely the missing key's.
     * Empty when every shape key was given.
     */
    public String defaultsNote() {
        if (defaultedShapeKeys.isEmpty()) {
            return "";
        }
        StringBuilder b = new StringBuilder(" (" + CONFIG_FILE + " does not give ");
        int i = 0;
        for (Map.Entry<String, Integer> e : defaultedShapeKeys.entrySet()) {
            b.append(i == 0 ? "" : i == defaultedShapeKeys.size() - 1 ? " or " : ", ").append(e.getKey());
            i++;
        }
        b.append(", so ").append(defaultedShapeKeys.size() == 1 ? "its default was" : "their defaults were").append(" used: ");
        i = 0;
        for (Map.Entry<String, Integer> e : defaultedShapeKeys.entrySet()) {
            b.append(i++ == 0 ? "" : ", ").append(e.getKey()).append(" = ").append(e.getValue());
        }
        return b.append(")").toString();
    }

    /** Per-class defaults of the transformers configuration classes. */
    private enum Family {
        LLAMA("llama", 32000, 11008, 2048, null, null, 1, List.of(2)),
        MISTRAL("mistral", 32000, 14336, 4096 * 32, 8, null, 1, List.of(2)),
        QWEN2("qwen2", 151936, 22016, 32768, 32, null, null, List.of()),
        QWEN3("qwen3", 151936, 22016, 32768, 32, 128, null, List.of());

        final String type;
        final int vocab;
        final int intermediate;
        final int maxPositions;
        final Integer kvHeads;     // null: num_attention_heads
        final Integer headDim;     // null: hidden_size / num_attention_heads
        final Integer bos;
        final List<Integer> eos;

        Family(String type, int vocab, int intermediate, int maxPositions, Integer kvHeads, Integer headDim,
               Integer bos, List<Integer> eos) {
            this.type = type;
            this.vocab = vocab;
            this.intermediate = intermediate;
            this.maxPositions = maxPositions;
            this.kvHeads = kvHeads;
            this.headDim = headDim;
            this.bos = bos;
            this.eos = eos;
        }

        static Family of(String type) {
            for (Family f : values()) {
                if (f.type.equals(type)) {
                    return f;
                }
            }
            return null;
        }
    }

    private static final int DEFAULT_HIDDEN = 4096;
    private static final int DEFAULT_LAYERS = 32;
    private static final int DEFAULT_HEADS = 32;
    private static final double DEFAULT_RMS_EPS = 1e-6;
    private static final double DEFAULT_ROPE_THETA = 10000.0;
    /** Mistral / Qwen {@code sliding_window} when the key is absent. */
    private static final int DEFAULT_SLIDING_WINDOW = 4096;
    /** Qwen {@code max_window_layers} when the key is absent. */
    private static final int DEFAULT_MAX_WINDOW_LAYERS = 28;

    /**
     * Reads {@code modelDir/config.json}.
     *
     * @throws TandemException when the directory or file is missing, the JSON is malformed, the model
     *                         type or an option is unsupported, or a value is invalid; the message names
     *                         the file and the field
     */
    public static ModelConfig load(Path modelDir) {
        Path dir = requireModelDirectory(modelDir);
        JsonFields c = JsonFields.read(dir.resolve(CONFIG_FILE), false);

        String supported = String.join(", ", SUPPORTED_MODEL_TYPES);
        if (!c.hasValue("model_type")) {
            throw c.error("model_type", "is missing (supported: " + supported + ")");
        }
        String modelType = c.stringOrNull("model_type");
        Family fam = Family.of(modelType);
        if (fam == null && "bert".equals(modelType)) {
            throw c.error("model_type", "\"bert\" is an encoder, which embeds text rather than generating it (tandem embed)");
        }
        if (fam == null) {
            throw c.error("model_type", "\"" + modelType + "\" is not supported (supported: " + supported + ")");
        }

        int vocab = c.positiveInt("vocab_size", fam.vocab);
        int hidden = c.positiveInt("hidden_size", DEFAULT_HIDDEN);
        int intermediate = c.positiveInt("intermediate_size", fam.intermediate);
        int layers = c.positiveInt("num_hidden_layers", DEFAULT_LAYERS);
        int heads = c.positiveInt("num_attention_heads", DEFAULT_HEADS);

        int kvHeads;
        if (c.isNull("num_key_value_heads") || (!c.has("num_key_value_heads") && fam.kvHeads == null)) {
            kvHeads = heads;
        } else {
            kvHeads = c.positiveInt("num_key_value_heads", fam.kvHeads == null ? heads : fam.kvHeads);
        }
        if (heads % kvHeads != 0) {
            throw c.error("num_attention_heads (" + heads + ") must be a multiple of num_key_value_heads ("
                    + kvHeads + (c.hasValue("num_key_value_heads") ? "" : ", the " + fam.type + " default: the key is not given")
                    + (c.hasValue("num_attention_heads") ? "" : "; num_attention_heads is not given either, so it is the default")
                    + ")");
        }

        int headDim;
        if (c.hasValue("head_dim")) {
            headDim = c.positiveInt("head_dim", 0);
        } else if (!c.has("head_dim") && fam.headDim != null) {
            headDim = fam.headDim;
        } else {
            if (hidden % heads != 0) {
                throw c.error("hidden_size (" + hidden + ") must be a multiple of num_attention_heads (" + heads
                        + ") when head_dim is not given");
            }
            headDim = hidden / heads;
        }
        if (headDim % 2 != 0) {
            throw c.error("head_dim", "must be even for rotary embeddings, got " + headDim);
        }

        int maxPositions = c.positiveInt("max_position_embeddings", fam.maxPositions);
        double eps = c.doubleOr("rms_norm_eps", DEFAULT_RMS_EPS);
        if (!JsonFields.positiveFinite(eps)) {
            throw c.error("rms_norm_eps", "must be positive, got " + eps);
        }

        String hiddenAct = c.has("hidden_act") ? c.stringOrNull("hidden_act") : "silu";
        if (!"silu".equals(hiddenAct)) {
            throw c.error("hidden_act", (hiddenAct == null ? "null" : "\"" + hiddenAct + "\"")
                    + " is not supported (Tandem implements silu only)");
        }

        // ---- rotary embeddings: legacy rope_theta + rope_scaling, or transformers 5 rope_parameters ----
        JsonFields ropeSection = c.objectOrNull("rope_scaling");
        if (ropeSection != null && ropeSection.isEmpty()) {
            ropeSection = null;
        }
        if (ropeSection == null) {
            ropeSection = c.objectOrNull("rope_parameters");
            if (ropeSection != null) {
                for (String key : ropeSection.keys()) {
                    JsonNode v = ropeSection.raw(key);
                    if (v != null && v.isObject()) {
                        throw ropeSection.error(key, "is a per-layer-type rope configuration, which Tandem does not support");
                    }
                }
            }
        }
        double theta = DEFAULT_ROPE_THETA;
        String thetaField = "rope_theta";
        if (ropeSection != null && ropeSection.hasValue("rope_theta")) {
            theta = ropeSection.doubleOr("rope_theta", DEFAULT_ROPE_THETA);
            thetaField = ropeSection.name("rope_theta");
        } else if (c.hasValue("rope_theta")) {
            theta = c.doubleOr("rope_theta", DEFAULT_ROPE_THETA);
        }
        if (!JsonFields.positiveFinite(theta)) {
            throw c.error(thetaField + " must be positive, got " + theta);
        }
        checkFullRotary(c);
        if (ropeSection != null) {
            checkFullRotary(ropeSection);
        }
        RopeScaling scaling = ropeSection == null ? null : RopeScaling.parse(ropeSection);

        // ---- biases and per-family modules ----
        boolean attentionBias = c.boolOr("attention_bias", false);
        boolean qkvBias;
        boolean outputBias;
        boolean mlpBias = false;
        boolean qkNorm = false;
        switch (fam) {
            case LLAMA -> {
                qkvBias = attentionBias;
                outputBias = attentionBias;
                mlpBias = c.boolOr("mlp_bias", false);
            }
            case MISTRAL -> {
                qkvBias = false;
                outputBias = false;
            }
            case QWEN2 -> {
                qkvBias = true;
                outputBias = false;
            }
            case QWEN3 -> {
                qkvBias = attentionBias;
                outputBias = attentionBias;
                qkNorm = true;
            }
            default -> throw new AssertionError(fam);
        }

        boolean tie = c.boolOr("tie_word_embeddings", false);
        Integer bos = c.has("bos_token_id") ? c.intOrNull("bos_token_id") : fam.bos;
        if (bos != null && bos < 0) {
            throw c.error("bos_token_id", "must not be negative, got " + bos);
        }
        List<Integer> eos = c.has("eos_token_id") ? c.intList("eos_token_id", List.of()) : fam.eos;
        boolean causal = c.boolOr("is_causal", true);
        Integer mask = c.has("mask_token_id") ? c.intOrNull("mask_token_id") : null;
        if (mask != null && (mask < 0 || mask >= vocab)) {
            throw c.error("mask_token_id", "must be a token id in [0, vocab_size = " + vocab + "), got " + mask);
        }

        Integer window = slidingWindow(c, fam, layers);

        String dtype = c.hasValue("torch_dtype") ? textOrNull(c.raw("torch_dtype"))
                : c.hasValue("dtype") ? textOrNull(c.raw("dtype")) : null;

        Map<String, Integer> defaulted = new LinkedHashMap<>();
        Map<String, Integer> used = new LinkedHashMap<>();
        used.put("vocab_size", vocab);
        used.put("hidden_size", hidden);
        used.put("intermediate_size", intermediate);
        used.put("num_hidden_layers", layers);
        used.put("num_attention_heads", heads);
        used.put("num_key_value_heads", kvHeads);
        used.put("head_dim", headDim);
        for (Map.Entry<String, Integer> e : used.entrySet()) {
            if (!c.hasValue(e.getKey())) {
                defaulted.put(e.getKey(), e.getValue());
            }
        }
        if (fam.headDim == null && c.hasValue("num_attention_heads") && c.hasValue("hidden_size")) {
            defaulted.remove("head_dim"); // hidden_size / num_attention_heads: derived from given keys, not a default
        }
        if (c.hasValue("num_attention_heads") && fam.kvHeads == null) {
            defaulted.remove("num_key_value_heads"); // = num_attention_heads, as the class defines it
        }
        return new ModelConfig(fam.type, vocab, hidden, intermediate, layers, heads, kvHeads, headDim,
                maxPositions, eps, theta, scaling, tie, qkvBias, outputBias, mlpBias, qkNorm, hiddenAct, bos, eos,
                causal, mask, window, dtype, defaulted);
    }

    private static String textOrNull(JsonNode v) {
        return v != null && v.isTextual() ? v.textValue() : null;
    }

    private static void checkFullRotary(JsonFields f) {
        if (f.hasValue("partial_rotary_factor")) {
            double p = f.doubleOr("partial_rotary_factor", 1.0);
            if (p != 1.0) {
                throw f.error("partial_rotary_factor", "is " + p + ", but Tandem rotates the full head only (1.0)");
            }
        }
    }

    /**
     * The effective sliding window, as transformers applies it: mistral on every layer
     * ({@code sliding_window}, 4096 when absent, none when null); qwen2/qwen3 only with
     * {@code use_sliding_window: true}, and only on the layers {@code layer_types} marks
     * "sliding_attention" (or, without layer_types, layers at index ≥ {@code max_window_layers}).
     */
    private static Integer slidingWindow(JsonFields c, Family fam, int layers) {
        Integer window;
        switch (fam) {
            case MISTRAL -> window = c.has("sliding_window")
                    ? c.intOrNull("sliding_window") : Integer.valueOf(DEFAULT_SLIDING_WINDOW);
            case QWEN2, QWEN3 -> {
                if (!c.boolOr("use_sliding_window", false)) {
                    return null;
                }
                window = c.has("sliding_window")
                        ? c.intOrNull("sliding_window") : Integer.valueOf(DEFAULT_SLIDING_WINDOW);
                if (window == null) {
                    return null;
                }
                boolean anySliding;
                JsonNode types = c.raw("layer_types");
                if (types != null && !types.isNull()) {
                    if (!types.isArray()) {
                        throw c.error("layer_types", "must be a list, got " + JsonFields.show(types));
                    }
                    anySliding = false;
                    for (JsonNode t : types) {
                        anySliding |= t.isTextual() && t.textValue().equals("sliding_attention");
                    }
                } else {
                    anySliding = c.intOr("max_window_layers", DEFAULT_MAX_WINDOW_LAYERS) < layers;
                }
                if (!anySliding) {
                    return null;
                }
            }
            default -> {
                return null;
            }
        }
        if (window != null && window <= 0) {
            throw c.error("sliding_window", "must be positive, got " + window);
        }
        return window;
    }

    /** Checks {@code modelDir} is an existing directory and returns it. */
    static Path requireModelDirectory(Path modelDir) {
        if (!Files.exists(modelDir)) {
            throw new TandemException("model directory not found: " + modelDir + ".");
        }
        if (!Files.isDirectory(modelDir)) {
            throw new TandemException("model directory " + modelDir + " is a file, not a directory.");
        }
        return modelDir;
    }

    /**
     * The longest context Tandem accepts for this model: {@code max_position_embeddings}, or the
     * sliding window when one is active and smaller. Tandem does not implement sliding-window
     * attention; up to the window's length full attention gives the same results, beyond it not.
     */
    public int maxContext() {
        return slidingWindow != null && slidingWindow < maxPositionEmbeddings ? slidingWindow : maxPositionEmbeddings;
    }

    /**
     * Which setting limits {@link #maxContext()}, for messages: {@code "config.json sliding_window"} or
     * {@code "config.json max_position_embeddings"}.
     */
    public String maxContextSource() {
        return slidingWindow != null && slidingWindow < maxPositionEmbeddings
                ? CONFIG_FILE + " sliding_window"
                : CONFIG_FILE + " max_position_embeddings";
    }

    /** Query heads sharing one key/value head. */
    public int groupSize() {
        return numHeads / numKvHeads;
    }

    /**
     * The RoPE inverse frequencies, {@code headDim / 2} of them, as Hugging Face computes them
     * ({@code _compute_default_rope_parameters}, {@code _compute_linear_scaling_rope_parameters},
     * {@code _compute_llama3_parameters}). With {@code d = headDim}, {@code θ = rope_theta} and
     * {@code i = 0 … d/2 − 1}:
     * <pre>
     *   default:  inv[i] = 1 / θ^(2i / d)
     *   linear:   inv[i] / factor
     *   llama3:   λ = 2π / inv[i],  L = original_max_position_embeddings
     *             λ &lt; L / high_freq_factor   → inv[i]                          (high frequency, kept)
     *             λ &gt; L / low_freq_factor    → inv[i] / factor                 (low frequency, interpolated)
     *             otherwise                  → (1 − s) · inv[i] / factor + s · inv[i],
     *                                          s = (L / λ − low_freq_factor) / (high_freq_factor − low_freq_factor)
     * </pre>
     * Every step is rounded to float32 in the order torch evaluates the Python expressions (the
     * exponent {@code 2i/d} and θ as float32, the power correctly rounded to float32, {@code a / x} as
     * {@code x.reciprocal() * a}, Python scalars cast to float32). The result equals torch's float32
     * values bit for bit on torch's scalar CPU kernel ({@code ATEN_CPU_CAPABILITY=default}; checked
     * against torch 1.13 for θ from 1e4 to 5e6, d from 16 to 256, all three rope types). torch's
     * AVX2/AVX-512 kernels take the power from SLEEF's {@code powf} (within 1 ulp, and different between
     * the two), so on those machines about 1% of the values differ by an ulp or two (a few ulp after
     * llama3 scaling); θ = 10000 with d = 16 or 32 (the bard models) matches on all three kernels.
     */
    public float[] ropeInverseFrequencies() {
        float[] inv = defaultInverseFrequencies(headDim, ropeTheta);
        return ropeScaling == null ? inv : ropeScaling.apply(inv);
    }

    /** {@code 1 / θ^(2i/d)} for {@code i < d/2}, in torch's float32 steps (see {@link #ropeInverseFrequencies()}). */
    public static float[] defaultInverseFrequencies(int headDim, double theta) {
        float[] inv = new float[headDim / 2];
        float base = (float) theta;            // python float → float32 (result dtype of base ** float32 tensor)
        float d = headDim;
        for (int i = 0; i < inv.length; i++) {
            float exponent = (float) (2 * i) / d;                    // arange(0, d, 2).float() / d
            float power = (float) Math.pow(base, exponent);           // base ** exponent, rounded to float32
            inv[i] = 1.0f / power;                                    // 1.0 / x → x.reciprocal() * 1.0
        }
        return inv;
    }
}
