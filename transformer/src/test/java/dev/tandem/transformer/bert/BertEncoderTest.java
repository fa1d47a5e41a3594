package dev.tandem.transformer.bert;

import dev.tandem.runtime.Erf;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.config.BertConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;
import dev.tandem.transformer.weights.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link BertEncoder} on a small random BERT against a direct double-precision computation of the same network (HF's
 * BertModel: embeddings + LayerNorm, post-LayerNorm blocks, exact GELU), batched sequences against each alone, and a
 * Hugging Face directory (config.json + safetensors, with a {@code bert.} prefix) against the weights given directly.
 */
class BertEncoderTest {
    static final BertConfig CONFIG = new BertConfig(60, 32, 2, 4, 48, 24, 2, 1e-12);

    static Map<String, float[]> randomWeights(long seed) {
        return BertFixtures.randomWeights(CONFIG, seed);
    }

    static long[] shapeOf(String name) {
        return BertFixtures.shapeOf(CONFIG, name);
    }

    private static Tokenizer anyTokenizer() {
        return Tokenizers.load(TestModels.model("bard-s").resolve("tokenizer.json"));
    }

    private static BertEncoder encoder(Map<String, float[]> w, int passTokens) {
        return new BertEncoder(CONFIG, anyTokenizer(), name -> w.containsKey(name) ? Tensor.ofFloats(w.get(name), shapeOf(name)) : null,
                new CpuBackend(2), true, "the test's weights", passTokens, null);
    }

    // ---- the reference, in double, straight from HF's BertModel

    private static double[][] layerNorm(double[][] x, float[] w, float[] b) {
        double[][] out = new double[x.length][];
        for (int i = 0; i < x.length; i++) {
            double mean = 0, var = 0;
            for (double v : x[i]) mean += v;
            mean /= x[i].length;
            for (double v : x[i]) var += (v - mean) * (v - mean);
            var /= x[i].length;
            out[i] = new double[x[i].length];
            for (int j = 0; j < x[i].length; j++) {
                out[i][j] = (x[i][j] - mean) / Math.sqrt(var + CONFIG.layerNormEps()) * w[j] + b[j];
            }
        }
        return out;
    }

    private static double[][] linear(double[][] x, float[] w, float[] b, int out) {
        int in = x[0].length;
        double[][] y = new double[x.length][out];
        for (int i = 0; i < x.length; i++) {
            for (int o = 0; o < out; o++) {
                double s = b[o];
                for (int k = 0; k < in; k++) s += x[i][k] * w[o * in + k];
                y[i][o] = s;
            }
        }
        return y;
    }

    static double[][] referenceStates(Map<String, float[]> w, int[] ids) {
        int d = CONFIG.hiddenSize(), n = ids.length, heads = CONFIG.numHeads(), hd = CONFIG.headDim();
        double[][] x = new double[n][d];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < d; j++) {
                x[i][j] = (double) w.get(BertEncoder.WORD)[ids[i] * d + j] + w.get(BertEncoder.POSITION)[i * d + j]
                        + w.get(BertEncoder.TYPE)[j];
            }
        }
        x = layerNorm(x, w.get(BertEncoder.EMB_LN + ".weight"), w.get(BertEncoder.EMB_LN + ".bias"));
        for (int l = 0; l < CONFIG.numLayers(); l++) {
            String p = "encoder.layer." + l + ".";
            double[][] q = linear(x, w.get(p + "attention.self.query.weight"), w.get(p + "attention.self.query.bias"), d);
            double[][] k = linear(x, w.get(p + "attention.self.key.weight"), w.get(p + "attention.self.key.bias"), d);
            double[][] v = linear(x, w.get(p + "attention.self.value.weight"), w.get(p + "attention.self.value.bias"), d);
            double[][] a = new double[n][d];
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < n; i++) {
                    double[] s = new double[n];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < n; j++) {
                        for (int c = 0; c < hd; c++) s[j] += q[i][h * hd + c] * k[j][h * hd + c];
                        s[j] /= Math.sqrt(hd);
                        max = Math.max(max, s[j]);
                    }
                    double z = 0;
                    for (int j = 0; j < n; j++) z += (s[j] = Math.exp(s[j] - max));
                    for (int j = 0; j < n; j++) {
                        for (int c = 0; c < hd; c++) a[i][h * hd + c] += s[j] / z * v[j][h * hd + c];
                    }
                }
            }
            double[][] o = linear(a, w.get(p + "attention.output.dense.weight"), w.get(p + "attention.output.dense.bias"), d);
            for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) o[i][j] += x[i][j];
            x = layerNorm(o, w.get(p + "attention.output.LayerNorm.weight"), w.get(p + "attention.output.LayerNorm.bias"));
            double[][] f = linear(x, w.get(p + "intermediate.dense.weight"), w.get(p + "intermediate.dense.bias"), CONFIG.intermediateSize());
            for (double[] row : f) for (int j = 0; j < row.length; j++) row[j] = 0.5 * row[j] * (1 + Erf.erf(row[j] / Math.sqrt(2)));
            double[][] g = linear(f, w.get(p + "output.dense.weight"), w.get(p + "output.dense.bias"), d);
            for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) g[i][j] += x[i][j];
            x = layerNorm(g, w.get(p + "output.LayerNorm.weight"), w.get(p + "output.LayerNorm.bias"));
        }
        return x;
    }

    static double[] referenceEmbedding(Map<String, float[]> w, int[] ids, BertEncoder.Pooling pooling) {
        double[][] states = referenceStates(w, ids);
        double[] v = new double[CONFIG.hiddenSize()];
        if (pooling == BertEncoder.Pooling.CLS) {
            v = states[0].clone();
        } else {
            for (double[] row : states) for (int j = 0; j < v.length; j++) v[j] += row[j] / ids.length;
        }
        double norm = 0;
        for (double x : v) norm += x * x;
        norm = Math.sqrt(norm);
        for (int j = 0; j < v.length; j++) v[j] /= norm;
        return v;
    }

    private static List<int[]> sequences(long seed, int count) {
        SplittableRandom rnd = new SplittableRandom(seed);
        List<int[]> s = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int[] ids = new int[1 + rnd.nextInt(CONFIG.maxPositions())];
            for (int j = 0; j < ids.length; j++) ids[j] = rnd.nextInt(CONFIG.vocabSize());
            s.add(ids);
        }
        s.add(new int[] {7});
        int[] longest = new int[CONFIG.maxPositions()];
        java.util.Arrays.fill(longest, 3);
        s.add(longest);
        return s;
    }

    @Test
    void equalsTheNetworkComputedDirectly() {
        Map<String, float[]> w = randomWeights(11);
        List<int[]> seqs = sequences(12, 6);
        try (BertEncoder enc = encoder(w, 64)) {
            for (BertEncoder.Pooling pooling : BertEncoder.Pooling.values()) {
                float[][] got = enc.embedIds(seqs, pooling, true);
                for (int i = 0; i < seqs.size(); i++) {
                    double[] expected = referenceEmbedding(w, seqs.get(i), pooling);
                    double dot = 0, worst = 0;
                    for (int j = 0; j < expected.length; j++) {
                        dot += expected[j] * got[i][j];
                        worst = Math.max(worst, Math.abs(expected[j] - got[i][j]));
                    }
                    assertTrue(worst < 1e-4, pooling + " sequence " + i + ": max difference " + worst);
                    assertTrue(dot > 0.99999, pooling + " sequence " + i + ": cosine " + dot);
                }
            }
        }
    }

    @Test
    void aSequenceGivesTheSameVectorAloneAndBatchedAcrossPasses() {
        Map<String, float[]> w = randomWeights(13);
        List<int[]> seqs = sequences(14, 9);
        try (BertEncoder small = encoder(w, CONFIG.maxPositions()); BertEncoder big = encoder(w, 4096)) {
            float[][] together = big.embedIds(seqs, BertEncoder.Pooling.MEAN, true);
            float[][] split = small.embedIds(seqs, BertEncoder.Pooling.MEAN, true); // one or two sequences a pass
            for (int i = 0; i < seqs.size(); i++) {
                float[] alone = big.embedIds(List.of(seqs.get(i)), BertEncoder.Pooling.MEAN, true)[0];
                assertArrayEquals(alone, together[i], "sequence " + i + " batched");
                assertArrayEquals(alone, split[i], "sequence " + i + " in smaller passes");
            }
            float[] raw = big.embedIds(List.of(seqs.get(0)), BertEncoder.Pooling.MEAN, false)[0];
            double norm = 0;
            for (float v : raw) norm += v * v;
            assertTrue(Math.abs(Math.sqrt(norm) - 1) > 1e-3, "without normalising the vector keeps its length");
        }
    }

    @Test
    void aHuggingFaceDirectoryLoadsWithItsModelPrefix(@TempDir Path dir) throws Exception {
        Map<String, float[]> w = randomWeights(15);
        BertFixtures.writeDirectory(dir, CONFIG, 15);
        assertTrue(BertConfig.isBert(dir));
        assertEquals(CONFIG, BertConfig.load(dir));
        List<int[]> seqs = sequences(16, 3);
        try (BertEncoder fromDir = Encoders.openDirectory(dir, null, 1); BertEncoder direct = encoder(w, 4096)) {
            float[][] a = fromDir.embedIds(seqs, BertEncoder.Pooling.MEAN, true);
            float[][] b = direct.embedIds(seqs, BertEncoder.Pooling.MEAN, true);
            for (int i = 0; i < seqs.size(); i++) {
                assertArrayEquals(b[i], a[i], "sequence " + i);
            }
        }
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"bert\", \"hidden_act\": \"relu\"}");
        TandemException e = assertThrows(TandemException.class, () -> Encoders.openDirectory(dir, null, 1));
        assertTrue(e.getMessage().contains("hidden_act") && e.getMessage().contains("relu"), e.getMessage());
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"llama\"}");
        assertThrows(TandemException.class, () -> Encoders.openDirectory(dir, null, 1));
    }

    @Test
    void badInputsAreOneSentence() {
        Map<String, float[]> w = randomWeights(17);
        try (BertEncoder enc = encoder(w, 64)) {
            assertThrows(TandemException.class, () -> enc.embedIds(List.of(new int[0]), BertEncoder.Pooling.MEAN, true));
            assertThrows(TandemException.class, () -> enc.embedIds(List.of(new int[CONFIG.maxPositions() + 1]), BertEncoder.Pooling.MEAN, true));
            assertThrows(TandemException.class, () -> enc.embedIds(List.of(new int[] {CONFIG.vocabSize()}), BertEncoder.Pooling.MEAN, true));
        }
        w.remove("encoder.layer.1.output.dense.bias");
        TandemException missing = assertThrows(TandemException.class, () -> encoder(w, 64));
        assertEquals("the test's weights has no weight encoder.layer.1.output.dense.bias.", missing.getMessage());
    }
}
