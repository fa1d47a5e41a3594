package dev.tandem.transformer.bert;

import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.config.BertConfig;
import dev.tandem.transformer.weights.SafetensorsWriter;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/** Small random BERT encoders for tests: weights by HF name, and a Hugging Face directory of them. */
public final class BertFixtures {
    private BertFixtures() {
    }

    /** Random weights of {@code CONFIG}, by HF name: LayerNorm weights near 1, the rest small. */
    public static Map<String, float[]> randomWeights(BertConfig CONFIG, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, float[]> w = new LinkedHashMap<>();
        int d = CONFIG.hiddenSize(), ff = CONFIG.intermediateSize();
        w.put(BertEncoder.WORD, gaussian(rnd, CONFIG.vocabSize() * d, 0.5, 0));
        w.put(BertEncoder.POSITION, gaussian(rnd, CONFIG.maxPositions() * d, 0.5, 0));
        w.put(BertEncoder.TYPE, gaussian(rnd, CONFIG.typeVocabSize() * d, 0.5, 0));
        w.put(BertEncoder.EMB_LN + ".weight", gaussian(rnd, d, 0.1, 1));
        w.put(BertEncoder.EMB_LN + ".bias", gaussian(rnd, d, 0.1, 0));
        for (int l = 0; l < CONFIG.numLayers(); l++) {
            String p = "encoder.layer." + l + ".";
            for (String m : new String[] {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
                w.put(p + m + ".weight", gaussian(rnd, d * d, 0.2, 0));
                w.put(p + m + ".bias", gaussian(rnd, d, 0.1, 0));
            }
            w.put(p + "attention.output.LayerNorm.weight", gaussian(rnd, d, 0.1, 1));
            w.put(p + "attention.output.LayerNorm.bias", gaussian(rnd, d, 0.1, 0));
            w.put(p + "intermediate.dense.weight", gaussian(rnd, ff * d, 0.2, 0));
            w.put(p + "intermediate.dense.bias", gaussian(rnd, ff, 0.1, 0));
            w.put(p + "output.dense.weight", gaussian(rnd, d * ff, 0.2, 0));
            w.put(p + "output.dense.bias", gaussian(rnd, d, 0.1, 0));
            w.put(p + "output.LayerNorm.weight", gaussian(rnd, d, 0.1, 1));
            w.put(p + "output.LayerNorm.bias", gaussian(rnd, d, 0.1, 0));
        }
        return w;
    }

    /** The HF shape of the weight {@code name} of {@code CONFIG}. */
    public static long[] shapeOf(BertConfig CONFIG, String name) {
        int d = CONFIG.hiddenSize(), ff = CONFIG.intermediateSize();
        if (name.equals(BertEncoder.WORD)) return new long[] {CONFIG.vocabSize(), d};
        if (name.equals(BertEncoder.POSITION)) return new long[] {CONFIG.maxPositions(), d};
        if (name.equals(BertEncoder.TYPE)) return new long[] {CONFIG.typeVocabSize(), d};
        if (name.endsWith("intermediate.dense.weight")) return new long[] {ff, d};
        if (name.endsWith("output.dense.weight") && !name.contains("attention")) return new long[] {d, ff};
        if (name.endsWith("intermediate.dense.bias")) return new long[] {ff};
        if (name.endsWith(".weight") && !name.contains("LayerNorm")) return new long[] {d, d};
        return new long[] {d};
    }

    private static float[] gaussian(SplittableRandom rnd, int n, double sigma, double mean) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (mean + sigma * rnd.nextGaussian());
        }
        return v;
    }

    /**
     * Writes a Hugging Face BERT directory of {@code config} with random weights (seed {@code seed}, names prefixed
     * {@code bert.}) and bard-s's byte-level tokenizer (a stand-in: its ids must stay under the config's vocabulary).
     */
    public static Path writeDirectory(Path dir, BertConfig config, long seed) throws IOException {
        Files.createDirectories(dir);
        Map<String, SafetensorsWriter.Spec> specs = new LinkedHashMap<>();
        for (Map.Entry<String, float[]> e : randomWeights(config, seed).entrySet()) {
            specs.put("bert." + e.getKey(), SafetensorsWriter.f32(shapeOf(config, e.getKey()), e.getValue()));
        }
        SafetensorsWriter.write(dir.resolve("model.safetensors"), specs);
        Files.writeString(dir.resolve("config.json"), String.format(java.util.Locale.ROOT, """
                {"model_type": "bert", "vocab_size": %d, "hidden_size": %d, "num_hidden_layers": %d, "num_attention_heads": %d,
                 "intermediate_size": %d, "max_position_embeddings": %d, "type_vocab_size": %d, "layer_norm_eps": %s,
                 "hidden_act": "gelu", "position_embedding_type": "absolute"}
                """, config.vocabSize(), config.hiddenSize(), config.numLayers(), config.numHeads(), config.intermediateSize(),
                config.maxPositions(), config.typeVocabSize(), Double.toString(config.layerNormEps())));
        Files.copy(TestModels.model("bard-s").resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        return dir;
    }
}
