package dev.tandem.transformer.config;

import dev.tandem.runtime.TandemException;

import java.nio.file.Path;

/**
 * The shape of a BERT-family encoder (Hugging Face {@code model_type} {@code bert}): absolute position embeddings, token
 * types, post-LayerNorm blocks with biases, exact-erf GELU, bidirectional attention. Read from {@code config.json}, or
 * derived from another format's graph (an ONNX export).
 *
 * @param vocabSize        word-piece vocabulary ({@code vocab_size})
 * @param hiddenSize       width of the residual stream ({@code hidden_size})
 * @param numLayers        encoder blocks ({@code num_hidden_layers})
 * @param numHeads         attention heads ({@code num_attention_heads}); divides the hidden size
 * @param intermediateSize the feed-forward width ({@code intermediate_size})
 * @param maxPositions     position embeddings: the longest input ({@code max_position_embeddings})
 * @param typeVocabSize    token types ({@code type_vocab_size})
 * @param layerNormEps     LayerNorm's ε ({@code layer_norm_eps})
 */
public record BertConfig(int vocabSize, int hiddenSize, int numLayers, int numHeads, int intermediateSize, int maxPositions,
                         int typeVocabSize, double layerNormEps) {

    /** The file name of a Hugging Face checkpoint's configuration. */
    public static final String CONFIG_FILE = "config.json";

    public BertConfig {
        if (vocabSize < 1 || hiddenSize < 1 || numLayers < 1 || numHeads < 1 || intermediateSize < 1 || maxPositions < 1
                || typeVocabSize < 1) {
            throw new IllegalArgumentException("every size of a BERT config must be at least 1: " + this);
        }
        if (hiddenSize % numHeads != 0) {
            throw new IllegalArgumentException("the hidden size " + hiddenSize + " is not a multiple of the " + numHeads + " heads");
        }
        if (!(layerNormEps > 0) || Double.isInfinite(layerNormEps)) {
            throw new IllegalArgumentException("layer_norm_eps must be a finite number > 0, but was " + layerNormEps);
        }
    }

    public int headDim() {
        return hiddenSize / numHeads;
    }

    /** Whether {@code dir}'s {@code config.json} names a BERT-family encoder ({@code model_type} bert). */
    public static boolean isBert(Path dir) {
        try {
            JsonFields c = JsonFields.read(dir.resolve(CONFIG_FILE), true);
            return c != null && "bert".equals(c.stringOrNull("model_type"));
        } catch (TandemException e) {
            return false;
        }
    }

    /**
     * Reads {@code dir}'s {@code config.json}, which must say {@code "model_type": "bert"} with {@code "hidden_act": "gelu"}
     * (the exact GELU; other activations are refused) and absolute positions.
     *
     * @throws TandemException naming the file and field of a missing or bad value
     */
    public static BertConfig load(Path dir) {
        JsonFields c = JsonFields.read(dir.resolve(CONFIG_FILE), false);
        String type = c.stringOrNull("model_type");
        if (!"bert".equals(type)) {
            throw c.error("model_type", type == null ? "is missing; an encoder's config.json says \"bert\""
                    : "is \"" + type + "\", not the encoder type \"bert\"");
        }
        String act = c.stringOrNull("hidden_act");
        if (act != null && !act.equals("gelu")) {
            throw c.error("hidden_act", "is \"" + act + "\"; Tandem's encoder runs the exact GELU (\"gelu\") only");
        }
        String positions = c.stringOrNull("position_embedding_type");
        if (positions != null && !positions.equals("absolute")) {
            throw c.error("position_embedding_type", "is \"" + positions + "\"; Tandem's encoder runs absolute positions only");
        }
        int hidden = c.positiveInt("hidden_size", 768);
        int heads = c.positiveInt("num_attention_heads", 12);
        if (hidden % heads != 0) {
            throw c.error("hidden_size (" + hidden + ") must be a multiple of num_attention_heads (" + heads + ")");
        }
        double eps = c.doubleOr("layer_norm_eps", 1e-12);
        if (!JsonFields.positiveFinite(eps)) {
            throw c.error("layer_norm_eps", "must be a finite number > 0, but is " + eps);
        }
        return new BertConfig(c.positiveInt("vocab_size", 30522), hidden, c.positiveInt("num_hidden_layers", 12), heads,
                c.positiveInt("intermediate_size", 3072), c.positiveInt("max_position_embeddings", 512),
                c.positiveInt("type_vocab_size", 2), eps);
    }
}
