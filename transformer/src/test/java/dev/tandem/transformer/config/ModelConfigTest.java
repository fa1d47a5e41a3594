package dev.tandem.transformer.config;

import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelConfigTest {

    @TempDir
    Path dir;

    private ModelConfig load(String json) throws IOException {
        Files.writeString(dir.resolve("config.json"), json);
        return ModelConfig.load(dir);
    }

    private TandemException reject(String json) throws IOException {
        Files.writeString(dir.resolve("config.json"), json);
        return assertThrows(TandemException.class, () -> ModelConfig.load(dir));
    }

    private static void assertOneSentenceNaming(TandemException e, String... parts) {
        String m = e.getMessage();
        for (String p : parts) {
            assertTrue(m.contains(p), () -> "message lacks \"" + p + "\": " + m);
        }
        assertTrue(m.endsWith("."), () -> "message is not one sentence ending in a period: " + m);
        assertFalse(m.contains("\n"), () -> "message spans lines: " + m);
    }

    // ---------------------------------------------------------------- the repository's models

    @Test
    void bundledBardConfigsParseAsLlamaWithoutBiases() {
        ModelConfig c = ModelConfig.load(TestModels.model("bard-l"));
        assertEquals("llama", c.modelType());
        assertEquals(2048, c.vocabSize());
        assertEquals(256, c.hiddenSize());
        assertEquals(688, c.intermediateSize());
        assertEquals(6, c.numLayers());
        assertEquals(8, c.numHeads());
        assertEquals(4, c.numKvHeads());
        assertEquals(32, c.headDim());
        assertEquals(1024, c.maxPositionEmbeddings());
        assertEquals(1e-5, c.rmsNormEps());
        assertEquals(10000.0, c.ropeTheta());
        assertNull(c.ropeScaling());
        assertFalse(c.tieWordEmbeddings());
        assertFalse(c.qkvBias() || c.outputBias() || c.mlpBias() || c.qkNorm());
        assertEquals(2047, c.bosTokenId());
        assertEquals(List.of(2047), c.eosTokenIds());
        assertTrue(c.isCausal());
        assertNull(c.slidingWindow());
        assertEquals("float32", c.torchDtype());
        assertEquals(1024, c.maxContext());
        assertEquals("config.json max_position_embeddings", c.maxContextSource());
        assertEquals(16, c.ropeInverseFrequencies().length);

        for (String name : List.of("bard-s", "bard-m")) {
            ModelConfig small = ModelConfig.load(TestModels.model(name));
            assertEquals(small.hiddenSize() / small.numHeads(), small.headDim(), name);
        }
    }

    // ---------------------------------------------------------------- families and defaults

    @Test
    void llamaAbsentKeysTakeLlamaConfigDefaults() throws IOException {
        ModelConfig c = load("{\"model_type\": \"llama\"}");
        assertEquals(32000, c.vocabSize());
        assertEquals(4096, c.hiddenSize());
        assertEquals(11008, c.intermediateSize());
        assertEquals(32, c.numLayers());
        assertEquals(32, c.numHeads());
        assertEquals(32, c.numKvHeads(), "num_key_value_heads defaults to num_attention_heads");
        assertEquals(128, c.headDim());
        assertEquals(2048, c.maxPositionEmbeddings());
        assertEquals(1e-6, c.rmsNormEps());
        assertEquals(10000.0, c.ropeTheta());
        assertEquals("silu", c.hiddenAct());
        assertEquals(1, c.bosTokenId());
        assertEquals(List.of(2), c.eosTokenIds());
        assertFalse(c.tieWordEmbeddings());
        assertTrue(c.isCausal());
        assertNull(c.torchDtype());
    }

    @Test
    void leftOutShapeKeysAreRecordedWithTheDefaultUsed() throws IOException {
        ModelConfig all = ModelConfig.load(TestModels.model("bard-l"));
        assertEquals(java.util.Map.of(), all.defaultedShapeKeys());
        assertEquals("", all.defaultsNote());
        ModelConfig some = load("""
                {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 10}""");
        // head_dim and num_key_value_heads follow from given keys for llama; intermediate_size is the class default.
        assertEquals(java.util.Map.of("intermediate_size", 11008), some.defaultedShapeKeys());
        assertEquals(" (config.json does not give intermediate_size, so its default was used: intermediate_size = 11008)",
                some.defaultsNote());
        ModelConfig qwen3 = load("""
                {"model_type": "qwen3", "hidden_size": 64, "num_attention_heads": 32, "num_hidden_layers": 2, "vocab_size": 10,
                 "intermediate_size": 128}""");
        assertEquals(java.util.List.of("num_key_value_heads", "head_dim"), java.util.List.copyOf(qwen3.defaultedShapeKeys().keySet()));
        assertEquals(" (config.json does not give num_key_value_heads or head_dim, so their defaults were used: "
                + "num_key_value_heads = 32, head_dim = 128)", qwen3.defaultsNote());
        TandemException e = assertThrows(TandemException.class, () -> load("""
                {"model_type": "qwen3", "hidden_size": 64, "num_attention_heads": 4}"""));
        assertTrue(e.getMessage().contains("num_key_value_heads (32, the qwen3 default: the key is not given)"), e.getMessage());
    }

    @Test
    void llamaAttentionBiasCoversQkvAndOutputAndMlpBiasTheMlp() throws IOException {
        ModelConfig c = load("""
                {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
                 "attention_bias": true, "mlp_bias": true}""");
        assertTrue(c.qkvBias());
        assertTrue(c.outputBias());
        assertTrue(c.mlpBias());
        assertFalse(c.qkNorm());
        ModelConfig plain = load("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4}");
        assertFalse(plain.qkvBias() || plain.outputBias() || plain.mlpBias());
    }

    @Test
    void mistralHasNoBiasesAndItsDefaultSlidingWindowLimitsTheContext() throws IOException {
        ModelConfig c = load("""
                {"model_type": "mistral", "hidden_size": 1024, "num_attention_heads": 16,
                 "attention_bias": true, "max_position_embeddings": 32768}""");
        assertFalse(c.qkvBias() || c.outputBias() || c.mlpBias() || c.qkNorm(),
                "transformers' Mistral modules hard-code bias=False");
        assertEquals(8, c.numKvHeads(), "MistralConfig's num_key_value_heads defaults to 8");
        assertEquals(14336, c.intermediateSize());
        assertEquals(4096, c.slidingWindow(), "sliding_window defaults to 4096 when absent");
        assertEquals(4096, c.maxContext());
        assertEquals("config.json sliding_window", c.maxContextSource());
    }

    @Test
    void mistralNullSlidingWindowMeansFullContext() throws IOException {
        ModelConfig c = load("""
                {"model_type": "mistral", "hidden_size": 64, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "sliding_window": null, "max_position_embeddings": 32768}""");
        assertNull(c.slidingWindow());
        assertEquals(32768, c.maxContext());
        assertEquals("config.json max_position_embeddings", c.maxContextSource());
        assertEquals(131072, load("""
                {"model_type": "mistral", "hidden_size": 64, "num_attention_heads": 4,
                 "num_key_value_heads": 4, "sliding_window": null}""").maxPositionEmbeddings());
    }

    @Test
    void slidingWindowLargerThanMaxPositionsDoesNotLimitTheContext() throws IOException {
        ModelConfig c = load("""
                {"model_type": "mistral", "hidden_size": 64, "num_attention_heads": 4,
                 "num_key_value_heads": 4, "sliding_window": 8192, "max_position_embeddings": 2048}""");
        assertEquals(8192, c.slidingWindow());
        assertEquals(2048, c.maxContext());
        assertEquals("config.json max_position_embeddings", c.maxContextSource());
    }

    @Test
    void qwen2AlwaysBiasesQkvAndNeverTheOutput() throws IOException {
        ModelConfig c = load("""
                {"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "attention_bias": false, "tie_word_embeddings": true, "rope_theta": 1000000.0,
                 "sliding_window": 4096, "use_sliding_window": false, "eos_token_id": 151643}""");
        assertTrue(c.qkvBias());
        assertFalse(c.outputBias());
        assertFalse(c.mlpBias());
        assertFalse(c.qkNorm());
        assertTrue(c.tieWordEmbeddings());
        assertEquals(1_000_000.0, c.ropeTheta());
        assertNull(c.slidingWindow(), "use_sliding_window is false");
        assertEquals(32768, c.maxContext());
        assertNull(c.bosTokenId(), "Qwen2Config has no default bos_token_id");
        assertEquals(List.of(151643), c.eosTokenIds());
        assertEquals(151936, load("{\"model_type\": \"qwen2\"}").vocabSize());
        assertEquals(32, load("{\"model_type\": \"qwen2\", \"num_attention_heads\": 64}").numKvHeads(),
                "Qwen2Config's num_key_value_heads defaults to 32");
    }

    @Test
    void qwenSlidingWindowCountsOnlyWhenEnabledAndSomeLayerUsesIt() throws IOException {
        String base = """
                {"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "num_hidden_layers": 4, "sliding_window": 1024, "use_sliding_window": true, %s}""";
        ModelConfig upper = load(base.formatted("\"max_window_layers\": 2"));
        assertEquals(1024, upper.slidingWindow());
        assertEquals(1024, upper.maxContext());
        assertEquals("config.json sliding_window", upper.maxContextSource());
        assertNull(load(base.formatted("\"max_window_layers\": 4")).slidingWindow(),
                "no layer index reaches max_window_layers");
        assertNull(load(base.formatted("\"max_window_layers\": 28")).slidingWindow());
        assertEquals(1024, load(base.formatted(
                "\"layer_types\": [\"full_attention\", \"sliding_attention\", \"full_attention\", \"full_attention\"]"))
                .slidingWindow());
    }

    @Test
    void qwen3HasQkNormAndHeadDim128ByDefault() throws IOException {
        ModelConfig c = load("""
                {"model_type": "qwen3", "hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 8,
                 "attention_bias": false, "eos_token_id": 151645, "bos_token_id": 151643}""");
        assertTrue(c.qkNorm());
        assertFalse(c.qkvBias() || c.outputBias() || c.mlpBias());
        assertEquals(128, c.headDim(), "Qwen3Config's head_dim defaults to 128, not hidden / heads (64)");
        assertEquals(List.of(151645), c.eosTokenIds());
        assertEquals(151643, c.bosTokenId());
        ModelConfig biased = load("""
                {"model_type": "qwen3", "hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 8,
                 "head_dim": 64, "attention_bias": true}""");
        assertTrue(biased.qkvBias());
        assertTrue(biased.outputBias(), "Qwen3Attention gives o_proj bias=config.attention_bias");
        assertEquals(64, biased.headDim());
    }

    @Test
    void headDimNeedNotEqualHiddenOverHeads() throws IOException {
        ModelConfig c = load("""
                {"model_type": "llama", "hidden_size": 96, "num_attention_heads": 4, "num_key_value_heads": 1,
                 "head_dim": 48}""");
        assertEquals(48, c.headDim());
        assertEquals(4, c.groupSize());
        assertEquals(24, c.ropeInverseFrequencies().length);
        assertEquals(24, load("""
                {"model_type": "mistral", "hidden_size": 96, "num_attention_heads": 4, "head_dim": null,
                 "num_key_value_heads": 4}""").headDim(), "head_dim null falls back to hidden / heads");
    }

    @Test
    void eosTokenIdMayBeAList() throws IOException {
        ModelConfig c = load("""
                {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
                 "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "vocab_size": 128256}""");
        assertEquals(List.of(128001, 128008, 128009), c.eosTokenIds());
        assertEquals(128000, c.bosTokenId());
        assertEquals(List.of(), load("""
                {"model_type": "llama", "eos_token_id": null, "bos_token_id": null}""").eosTokenIds());
    }

    @Test
    void isCausalFalseIsKept() throws IOException {
        assertFalse(load("{\"model_type\": \"llama\", \"is_causal\": false}").isCausal());
    }

    @Test
    void theMaskTokenIsKeptAndMustBeInTheVocabulary() throws IOException {
        assertEquals(2048, load("{\"model_type\": \"llama\", \"vocab_size\": 2049, \"mask_token_id\": 2048}").maskTokenId());
        assertEquals(null, load("{\"model_type\": \"llama\"}").maskTokenId());
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"vocab_size\": 2048, \"mask_token_id\": 2048}"),
                "mask_token_id", "2048");
    }

    // ---------------------------------------------------------------- rotary embeddings

    @Test
    void ropeParametersLayoutIsRead() throws IOException {
        ModelConfig c = load("""
                {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "max_position_embeddings": 131072,
                 "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                   "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}""");
        assertEquals(500000.0, c.ropeTheta());
        assertEquals(RopeScaling.llama3(8.0, 1.0, 4.0, 8192), c.ropeScaling());

        ModelConfig plain = load("""
                {"model_type": "qwen3", "rope_parameters": {"rope_type": "default", "rope_theta": 1000000}}""");
        assertEquals(1_000_000.0, plain.ropeTheta());
        assertNull(plain.ropeScaling());
    }

    @Test
    void ropeTypeDefaultOrLegacyTypeKeyAreAccepted() throws IOException {
        assertNull(load("{\"model_type\": \"llama\", \"rope_scaling\": {\"rope_type\": \"default\"}}").ropeScaling());
        assertNull(load("{\"model_type\": \"llama\", \"rope_scaling\": null}").ropeScaling());
        assertEquals(RopeScaling.linear(2.0),
                load("{\"model_type\": \"llama\", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}")
                        .ropeScaling());
    }

    /** torch's float32 values (1 / 10000^(2i/32)), identical on torch's scalar, AVX2 and AVX-512 kernels. */
    private static final int[] TORCH_DEFAULT_THETA_1E4_D32 = {
            0x3f800000, 0x3f0ff59a, 0x3ea1e89b, 0x3e361887, 0x3dcccccd, 0x3d6655c2, 0x3d0186e3, 0x3c91ad39,
            0x3c23d70a, 0x3bb8449c, 0x3b4f3e38, 0x3ae91528, 0x3a83126f, 0x3a136a16, 0x39a5cb60, 0x393a7753};

    @Test
    void defaultRopeFrequenciesMatchTorchFloat32BitForBit() throws IOException {
        float[] inv = ModelConfig.load(TestModels.model("bard-l")).ropeInverseFrequencies();
        for (int i = 0; i < inv.length; i++) {
            assertEquals(TORCH_DEFAULT_THETA_1E4_D32[i], Float.floatToRawIntBits(inv[i]), "index " + i);
            assertEquals(Math.pow(10000.0, -2.0 * i / 32), inv[i], 1e-7 * Math.pow(10000.0, -2.0 * i / 32));
        }
    }

    /** torch: inv_freq of θ = 10000, d = 32, then {@code inv_freq /= 3.0}. */
    private static final int[] TORCH_LINEAR3_THETA_1E4_D32 = {
            0x3eaaaaab, 0x3e3ff223, 0x3dd7e0cf, 0x3d72cb5f, 0x3d088889, 0x3c998e81, 0x3c2cb3d9, 0x3bc23c4c,
            0x3b5a740d, 0x3af5b0d0, 0x3a8a297b, 0x3a1b6370, 0x39aec33f, 0x39448d73, 0x38dd0f2b, 0x38789f19};

    @Test
    void linearScalingDividesEveryFrequencyByTheFactor() throws IOException {
        ModelConfig c = load("""
                {"model_type": "llama", "hidden_size": 128, "num_attention_heads": 4,
                 "rope_scaling": {"rope_type": "linear", "factor": 3.0}}""");
        assertEquals(RopeScaling.linear(3.0), c.ropeScaling());
        float[] scaled = c.ropeInverseFrequencies();
        float[] plain = ModelConfig.defaultInverseFrequencies(32, 10000.0);
        for (int i = 0; i < scaled.length; i++) {
            assertEquals(plain[i] / 3.0f, scaled[i], "index " + i);
            assertEquals(TORCH_LINEAR3_THETA_1E4_D32[i], Float.floatToRawIntBits(scaled[i]), "index " + i);
        }
    }

    @Test
    void llama3FrequenciesKeepHighBandDivideLowBandAndBlendBetween() throws IOException {
        // Llama 3.1: θ = 500000, head_dim 128, factor 8, low 1, high 4, original context 8192.
        ModelConfig c = load("""
                {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
                 "rope_theta": 500000.0, "max_position_embeddings": 131072,
                 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}""");
        float[] inv = c.ropeInverseFrequencies();
        assertEquals(64, inv.length);

        // By hand, in double: inv_i = 500000^(-2i/128), wavelen = 2π / inv_i,
        // high band (wavelen < 8192/4 = 2048): unchanged; low band (wavelen > 8192/1): inv / 8;
        // between: s = (8192 / wavelen - 1) / (4 - 1), (1 - s) * inv / 8 + s * inv.
        int high = 10;   // wavelen ≈ 2π · 500000^(20/128) ≈ 49.7
        int low = 50;    // wavelen ≈ 2π · 500000^(100/128) ≈ 1.8e5
        int band = 31;   // wavelen ≈ 2π · 500000^(62/128) ≈ 3631
        double invHigh = Math.pow(500000.0, -2.0 * high / 128);
        double invLow = Math.pow(500000.0, -2.0 * low / 128);
        double invBand = Math.pow(500000.0, -2.0 * band / 128);
        assertTrue(2 * Math.PI / invHigh < 2048);
        assertTrue(2 * Math.PI / invLow > 8192);
        double wl = 2 * Math.PI / invBand;
        assertTrue(wl > 2048 && wl < 8192);
        double s = (8192 / wl - 1.0) / (4.0 - 1.0);
        double blended = (1 - s) * invBand / 8 + s * invBand;

        assertEquals(invHigh, inv[high], 1e-6 * invHigh);
        assertEquals(invLow / 8, inv[low], 1e-6 * invLow / 8);
        assertEquals(blended, inv[band], 1e-6 * blended);
        assertTrue(inv[band] < invBand && inv[band] > invBand / 8, "the blend lies between the two bands");

        float[] plain = ModelConfig.defaultInverseFrequencies(128, 500000.0);
        assertEquals(plain[high], inv[high], "high frequencies are unchanged bit for bit");
        assertEquals(plain[low] / 8.0f, inv[low], "low frequencies are divided by the factor in float32");
    }

    /** torch (scalar CPU kernel) values of HF's _compute_llama3_parameters for the Llama 3.1 settings. */
    private static final int[] TORCH_LLAMA3_1 = {
            0x3f800000, 0x3f508ac1, 0x3f29e1c6, 0x3f0a6384, 0x3ee177bc, 0x3eb7ab7d, 0x3e959ee3, 0x3e73c461,
            0x3e4693b0, 0x3e21c3a0, 0x3e03c6a0, 0x3dd6b19c, 0x3daee4ad, 0x3d8e7898, 0x3d681e67, 0x3d3d1684,
            0x3d1a08c8, 0x3cfaf53f, 0x3ccc6f49, 0x3ca68939, 0x3c87a9c3, 0x3c5d06ec, 0x3c340d6d, 0x3c12ac7f,
            0x3beef74f, 0x3bc2aa76, 0x3b9e9402, 0x3b812e35, 0x3b527720, 0x3b0dfd06, 0x3ab3d11d, 0x3a60979e,
            0x3a0995d2, 0x39a3f108, 0x393b2dd2, 0x38c86886, 0x38a3418d, 0x3884fdbf, 0x3858ac81, 0x38308199,
            0x380fc8f8, 0x37ea426f, 0x37bed4f4, 0x379b7475, 0x377d45c3, 0x374e51f5, 0x3728126b, 0x3708ea0f,
            0x36df10c4, 0x36b5b687, 0x369406cb, 0x36712b80, 0x36447610, 0x36200a69, 0x36025f34, 0x35d46808,
            0x35ad07a7, 0x358cf400, 0x3565a54d, 0x353b12c7, 0x351864a7, 0x34f848c2, 0x34ca41b0, 0x34a4c2ff};

    @Test
    void llama3FrequenciesMatchTorchFloat32BitForBit() {
        float[] inv = RopeScaling.llama3(8.0, 1.0, 4.0, 8192)
                .apply(ModelConfig.defaultInverseFrequencies(128, 500000.0));
        for (int i = 0; i < inv.length; i++) {
            assertEquals(TORCH_LLAMA3_1[i], Float.floatToRawIntBits(inv[i]), "index " + i);
        }
    }

    // ---------------------------------------------------------------- bad input

    @Test
    void missingDirectoryIsReported() {
        Path nowhere = dir.resolve("no-such-model");
        TandemException e = assertThrows(TandemException.class, () -> ModelConfig.load(nowhere));
        assertEquals("model directory not found: " + nowhere + ".", e.getMessage());
    }

    @Test
    void missingConfigJsonNamesTheFile() {
        TandemException e = assertThrows(TandemException.class, () -> ModelConfig.load(dir));
        assertOneSentenceNaming(e, "config.json", dir.toString());
    }

    @Test
    void invalidUtf8IsNamedWhereItIs() throws IOException {
        // Latin-1 é in a key the loader does not read: the parser would have skipped it unchecked.
        byte[] json = "{\"model_type\": \"llama\",\n \"_name_or_path\": \"caf?\"}".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        json[json.length - 3] = (byte) 0xE9;
        Files.write(dir.resolve("config.json"), json);
        TandemException e = assertThrows(TandemException.class, () -> ModelConfig.load(dir));
        assertOneSentenceNaming(e, "config.json is not valid UTF-8 at line 2, byte 23 of the line");
    }

    @Test
    void malformedJsonNamesTheFile() throws IOException {
        TandemException e = reject("{\"model_type\": \"llama\",, }");
        assertOneSentenceNaming(e, "config.json", "not valid JSON", "line 1");
        assertOneSentenceNaming(reject("[1, 2]"), "config.json", "not a JSON object");
    }

    @Test
    void unknownModelTypeNamesTheFieldTheValueAndTheSupportedList() throws IOException {
        TandemException e = reject("{\"model_type\": \"gpt2\"}");
        assertOneSentenceNaming(e, "config.json", "model_type", "\"gpt2\"", "llama, mistral, qwen2, qwen3");
        assertOneSentenceNaming(reject("{\"hidden_size\": 64}"), "config.json", "model_type", "missing");
    }

    @Test
    void yarnRopeScalingIsRejectedNamingFieldValueAndSupportedTypes() throws IOException {
        TandemException e = reject("""
                {"model_type": "qwen2", "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                 "original_max_position_embeddings": 32768}}""");
        assertOneSentenceNaming(e, "config.json", "rope_scaling.rope_type", "\"yarn\"", "linear", "llama3");
        for (String type : List.of("dynamic", "longrope")) {
            assertOneSentenceNaming(reject("""
                    {"model_type": "llama", "rope_scaling": {"rope_type": "%s", "factor": 2.0}}""".formatted(type)),
                    "rope_scaling.rope_type", type);
        }
        assertOneSentenceNaming(reject("""
                {"model_type": "llama", "rope_parameters": {"rope_type": "yarn", "factor": 2.0}}"""),
                "config.json", "rope_parameters.rope_type", "\"yarn\"");
    }

    @Test
    void llama3ScalingWithoutItsRequiredKeysIsRejected() throws IOException {
        TandemException e = reject("""
                {"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                 "low_freq_factor": 1.0, "high_freq_factor": 4.0}}""");
        assertOneSentenceNaming(e, "config.json", "rope_scaling.original_max_position_embeddings", "missing");
        assertOneSentenceNaming(reject("""
                {"model_type": "llama", "rope_scaling": {"rope_type": "linear"}}"""),
                "config.json", "rope_scaling.factor", "missing");
        assertOneSentenceNaming(reject("""
                {"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                 "low_freq_factor": 4.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}"""),
                "config.json", "rope_scaling.high_freq_factor");
    }

    @Test
    void perLayerTypeRopeParametersAreRejected() throws IOException {
        assertOneSentenceNaming(reject("""
                {"model_type": "qwen3", "rope_parameters": {
                  "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                  "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}"""),
                "config.json", "rope_parameters.full_attention");
    }

    @Test
    void partialRotaryFactorIsRejected() throws IOException {
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"partial_rotary_factor\": 0.5}"),
                "config.json", "partial_rotary_factor");
    }

    @Test
    void geluHiddenActIsRejected() throws IOException {
        TandemException e = reject("{\"model_type\": \"llama\", \"hidden_act\": \"gelu\"}");
        assertOneSentenceNaming(e, "config.json", "hidden_act", "\"gelu\"", "silu");
    }

    @Test
    void headsThatAreNotAMultipleOfKvHeadsAreRejected() throws IOException {
        TandemException e = reject("""
                {"model_type": "llama", "hidden_size": 96, "num_attention_heads": 8, "num_key_value_heads": 3}""");
        assertOneSentenceNaming(e, "config.json", "num_attention_heads", "num_key_value_heads");
    }

    @Test
    void nonPositiveOrMistypedSizesAreRejected() throws IOException {
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"hidden_size\": 0}"),
                "config.json", "hidden_size", "positive");
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"num_hidden_layers\": -2}"),
                "config.json", "num_hidden_layers");
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"vocab_size\": \"2048\"}"),
                "config.json", "vocab_size", "integer");
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"intermediate_size\": 68.5}"),
                "config.json", "intermediate_size", "integer");
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"rms_norm_eps\": 0}"),
                "config.json", "rms_norm_eps");
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"rope_theta\": -1.0}"),
                "config.json", "rope_theta");
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"head_dim\": 7, \"num_attention_heads\": 4}"),
                "config.json", "head_dim", "even");
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"hidden_size\": 100, \"num_attention_heads\": 8}"),
                "config.json", "hidden_size", "head_dim");
        assertOneSentenceNaming(reject("{\"model_type\": \"mistral\", \"sliding_window\": 0}"),
                "config.json", "sliding_window");
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"eos_token_id\": [1, \"x\"]}"),
                "config.json", "eos_token_id");
        assertOneSentenceNaming(reject("{\"model_type\": \"llama\", \"attention_bias\": \"yes\"}"),
                "config.json", "attention_bias");
    }
}
