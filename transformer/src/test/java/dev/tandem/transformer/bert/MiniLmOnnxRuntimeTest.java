package dev.tandem.transformer.bert;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.onnx.BertOnnxWeights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 17's acceptance for the embedded encoder: all-MiniLM-L6-v2's vectors from {@link BertEncoder} equal ONNX
 * Runtime's run of the same ONNX file (its {@code last_hidden_state}, then sentence-transformers' mean pooling and
 * normalisation, in double) on 100 sentences — the 20 WordPiece goldens and 80 generated ones of 1 to ~500 tokens —
 * with a cosine of at least 0.9999 each. Both read the same token ids (the tokenizer is proven against the goldens
 * by its own tests), so this checks the network.
 */
class MiniLmOnnxRuntimeTest {
    static BertEncoder encoder;
    static OrtEnvironment env;
    static OrtSession session;

    @BeforeAll
    static void open() throws Exception {
        encoder = Encoders.miniLm(null, 2);
        env = OrtEnvironment.getEnvironment();
        byte[] model;
        try (InputStream in = MiniLmOnnxRuntimeTest.class.getClassLoader().getResourceAsStream(BertOnnxWeights.MINILM_MODEL)) {
            model = in.readAllBytes();
        }
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        options.setIntraOpNumThreads(2);
        session = env.createSession(model, options);
    }

    @AfterAll
    static void close() throws Exception {
        session.close();
        encoder.close();
    }

    static List<String> sentences() throws Exception {
        List<String> s = new ArrayList<>();
        JsonNode golden = new ObjectMapper().readTree(Path.of("src/test/resources/tokenizers/minilm/golden.json").toFile());
        for (JsonNode c : golden.get("minilm")) {
            s.add(c.get("text").asText());
        }
        String[] words = ("the a of and to in is was for on with as by at from that this it he she they we you not but "
                + "king queen crown winter summer discontent glorious sun york house ocean buried romeo juliet light window "
                + "breaks east rome citizens poor accounted famine revenge embeddings vector retrieval passage question "
                + "answer 42 3.14 2026 café naïve coöperate déjà-vu e-mail U.S.A. don't it's O'Brien, ; : ! ? ( ) \" -").split(" ");
        SplittableRandom rnd = new SplittableRandom(17);
        for (int i = 0; i < 80; i++) {
            int n = i < 4 ? 1 + i : i % 10 == 9 ? 300 + rnd.nextInt(180) : 1 + rnd.nextInt(40);
            StringBuilder b = new StringBuilder();
            for (int w = 0; w < n; w++) {
                b.append(w == 0 ? "" : " ").append(words[rnd.nextInt(words.length)]);
            }
            s.add(i % 7 == 0 ? b.toString().toUpperCase(java.util.Locale.ROOT) : b.toString());
        }
        return s;
    }

    /** ONNX Runtime's last_hidden_state of {@code ids}, mean-pooled and normalised in double. */
    static double[] onnxRuntime(int[] ids) throws Exception {
        long[][] in = new long[1][ids.length], mask = new long[1][ids.length], types = new long[1][ids.length];
        for (int i = 0; i < ids.length; i++) {
            in[0][i] = ids[i];
            mask[0][i] = 1;
        }
        try (OnnxTensor a = OnnxTensor.createTensor(env, in); OnnxTensor b = OnnxTensor.createTensor(env, mask);
             OnnxTensor c = OnnxTensor.createTensor(env, types);
             OrtSession.Result r = session.run(Map.of("input_ids", a, "attention_mask", b, "token_type_ids", c))) {
            float[][][] hidden = (float[][][]) r.get(0).getValue();
            double[] v = new double[hidden[0][0].length];
            for (float[] row : hidden[0]) {
                for (int j = 0; j < v.length; j++) {
                    v[j] += row[j] / (double) ids.length;
                }
            }
            double norm = 0;
            for (double x : v) {
                norm += x * x;
            }
            norm = Math.sqrt(norm);
            for (int j = 0; j < v.length; j++) {
                v[j] /= norm;
            }
            return v;
        }
    }

    @Test
    void vectorsEqualOnnxRuntimesOnAHundredSentences() throws Exception {
        List<String> texts = sentences();
        assertEquals(100, texts.size());
        List<int[]> ids = new ArrayList<>();
        for (String t : texts) {
            ids.add(encoder.tokenize(t, true)); // the longest cut to 512 positions, [SEP] kept
        }
        assertTrue(ids.stream().mapToInt(a -> a.length).max().orElseThrow() > 300, "some inputs use the later positions");
        float[][] got = encoder.embedIds(ids, BertEncoder.Pooling.MEAN, true);
        double worst = 1;
        for (int i = 0; i < texts.size(); i++) {
            double[] expected = onnxRuntime(ids.get(i));
            double dot = 0;
            for (int j = 0; j < expected.length; j++) {
                dot += expected[j] * got[i][j];
            }
            worst = Math.min(worst, dot);
            assertTrue(dot >= 0.9999, "sentence " + i + " (" + ids.get(i).length + " tokens): cosine " + dot);
        }
        System.out.printf("all-MiniLM-L6-v2 vs ONNX Runtime on 100 sentences: smallest cosine %.9f%n", worst);
    }

    @Test
    void theConfigIsMiniLmsAndTheEmbedderGivesTheSameVectors() {
        assertEquals(384, encoder.dimension());
        assertEquals(6, encoder.config().numLayers());
        Embedder embedder = Embedder.latency(encoder, BertEncoder.Pooling.MEAN, true, false);
        float[] alone = embedder.embed("Hello, my dog is cute");
        assertArrayEquals(encoder.embed(List.of("Hello, my dog is cute", "another"), BertEncoder.Pooling.MEAN, true, false)[0], alone);
    }
}
