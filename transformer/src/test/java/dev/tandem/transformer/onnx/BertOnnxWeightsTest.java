package dev.tandem.transformer.onnx;

import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.onnx.OnnxModel.Node;
import dev.tandem.transformer.onnx.proto.OnnxProto.GraphProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.ModelProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.NodeProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.TensorProto;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** BERT's weights and shape read out of ONNX graphs: the embedded MiniLM (parsed once) and a hand-built one. */
class BertOnnxWeightsTest {

    private static OnnxModel miniLm;
    private static BertOnnxWeights weights;

    @TempDir
    Path dir;

    @BeforeAll
    static void mapMiniLm() {
        miniLm = OnnxModel.readResource(BertOnnxWeights.MINILM_MODEL);
        weights = BertOnnxWeights.of(miniLm);
    }

    @AfterAll
    static void release() {
        miniLm = null;
        weights = null;
    }

    /** Hugging Face BertModel's weight names and shapes ([out, in] for a Linear). */
    private static List<Object[]> bertWeights(int layers, long hidden, long inter, long vocab, long positions, long types) {
        List<Object[]> w = new ArrayList<>();
        w.add(new Object[] {"embeddings.word_embeddings.weight", new long[] {vocab, hidden}});
        w.add(new Object[] {"embeddings.position_embeddings.weight", new long[] {positions, hidden}});
        w.add(new Object[] {"embeddings.token_type_embeddings.weight", new long[] {types, hidden}});
        w.add(new Object[] {"embeddings.LayerNorm.weight", new long[] {hidden}});
        w.add(new Object[] {"embeddings.LayerNorm.bias", new long[] {hidden}});
        for (int i = 0; i < layers; i++) {
            String p = "encoder.layer." + i + ".";
            for (String qkv : List.of("query", "key", "value")) {
                w.add(new Object[] {p + "attention.self." + qkv + ".weight", new long[] {hidden, hidden}});
                w.add(new Object[] {p + "attention.self." + qkv + ".bias", new long[] {hidden}});
            }
            w.add(new Object[] {p + "attention.output.dense.weight", new long[] {hidden, hidden}});
            w.add(new Object[] {p + "attention.output.dense.bias", new long[] {hidden}});
            w.add(new Object[] {p + "attention.output.LayerNorm.weight", new long[] {hidden}});
            w.add(new Object[] {p + "attention.output.LayerNorm.bias", new long[] {hidden}});
            w.add(new Object[] {p + "intermediate.dense.weight", new long[] {inter, hidden}});
            w.add(new Object[] {p + "intermediate.dense.bias", new long[] {inter}});
            w.add(new Object[] {p + "output.dense.weight", new long[] {hidden, inter}});
            w.add(new Object[] {p + "output.dense.bias", new long[] {hidden}});
            w.add(new Object[] {p + "output.LayerNorm.weight", new long[] {hidden}});
            w.add(new Object[] {p + "output.LayerNorm.bias", new long[] {hidden}});
        }
        return w;
    }

    private static void assertEveryWeightOnceWithItsShape(BertOnnxWeights w, List<Object[]> expected) {
        assertEquals(expected.stream().map(e -> (String) e[0]).toList(), w.names());
        Set<String> initializers = new HashSet<>();
        for (Object[] e : expected) {
            String name = (String) e[0];
            assertArrayEquals((long[]) e[1], w.shape(name), name);
            assertTrue(initializers.add(w.initializerName(name)), () -> w.initializerName(name) + " serves twice");
        }
    }

    @Test
    void everyBertWeightOfMiniLmIsFoundOnceWithItsShape() {
        assertEveryWeightOnceWithItsShape(weights, bertWeights(6, 384, 1536, 30522, 512, 2));
        assertEquals("onnx::MatMul_787", weights.initializerName("encoder.layer.0.attention.self.query.weight"));
        assertEquals("onnx::MatMul_864", weights.initializerName("encoder.layer.5.output.dense.weight"));
    }

    @Test
    void onlyThePositionIdsBufferIsNotAWeight() {
        assertEquals(List.of("embeddings.position_ids"), weights.unmappedInitializers());
    }

    @Test
    void theConfigIsReadFromTheGraph() {
        assertEquals(new BertGraphShape(384, 6, 12, 1536, 30522, 512, 2, 1e-12f, "gelu"), weights.config());
        assertEquals(32, weights.config().headDim());
    }

    @Test
    void linearWeightsComeInHuggingFacesOutByInLayout() {
        try (Arena arena = Arena.ofConfined()) {
            for (String name : List.of("encoder.layer.3.attention.self.query.weight", "encoder.layer.3.intermediate.dense.weight",
                    "encoder.layer.3.output.dense.weight")) {
                assertTrue(weights.isTransposed(name));
                OnnxTensor onnx = miniLm.initializer(weights.initializerName(name)).orElseThrow();
                float[] in = onnx.floats();
                Tensor t = weights.tensor(name, arena);
                long rows = onnx.dim(0);
                long cols = onnx.dim(1);
                assertArrayEquals(new long[] {cols, rows}, t.shape());
                for (long r = 0; r < rows; r += 7) {
                    for (long c = 0; c < cols; c += 5) {
                        assertEquals(in[(int) (r * cols + c)], t.getFloat(c * rows + r), name);
                    }
                }
            }
            String bias = "encoder.layer.3.intermediate.dense.bias";
            assertFalse(weights.isTransposed(bias));
            assertArrayEquals(miniLm.initializer(bias).orElseThrow().floats(), weights.tensor(bias, arena).toFloatArray());
        }
    }

    /** The graph walk never reads names; the exporter's node names, where it kept them, must agree with it. */
    @Test
    void theWalkAgreesWithTheExportersNodeNames() {
        for (String name : weights.names()) {
            if (!weights.isTransposed(name)) {
                assertEquals(name, weights.initializerName(name), "a readable initializer name was mapped elsewhere");
                continue;
            }
            String[] parts = name.split("\\.", 4); // encoder, layer, i, the module path
            String module = parts[3].substring(0, parts[3].length() - ".weight".length());
            String expected = "/encoder/layer." + parts[2] + "/" + module.replace('.', '/') + "/MatMul";
            List<String> readers = miniLm.nodes().stream()
                    .filter(n -> n.inputs().contains(weights.initializerName(name))).map(Node::name).toList();
            assertEquals(List.of(expected), readers, name);
        }
    }

    @Test
    void aGraphSpelledWithFusedOpsMapsTheSame() {
        try (OnnxModel m = OnnxModel.read(TinyBertOnnx.write(TinyBertOnnx.model(), dir.resolve("tiny.onnx")))) {
            BertOnnxWeights w = BertOnnxWeights.of(m);
            assertEquals(new BertGraphShape(TinyBertOnnx.HIDDEN, TinyBertOnnx.LAYERS, TinyBertOnnx.HEADS, TinyBertOnnx.INTERMEDIATE,
                    TinyBertOnnx.VOCAB, TinyBertOnnx.POSITIONS, TinyBertOnnx.TYPES, TinyBertOnnx.EPS, "gelu"), w.config());
            assertEveryWeightOnceWithItsShape(w, bertWeights(TinyBertOnnx.LAYERS, TinyBertOnnx.HIDDEN, TinyBertOnnx.INTERMEDIATE,
                    TinyBertOnnx.VOCAB, TinyBertOnnx.POSITIONS, TinyBertOnnx.TYPES));
            assertEquals(List.of("embeddings.position_ids"), w.unmappedInitializers());
            assertEquals("onnx::MatMul_105", w.initializerName("encoder.layer.0.output.dense.weight"));
        }
    }

    // ---- graphs that are not a BERT encoder this reader can follow: one sentence each ----

    @Test
    void aGraphWithoutEmbeddingsIsRefused() {
        reject(m -> m.getGraphBuilder().clearNode(), "no Gather reads input_ids from an embedding table.");
        reject(m -> m.getGraphBuilder().getInputBuilder(0).setName("ids"), "the graph has no input named input_ids");
    }

    @Test
    void attentionWithoutSoftmaxIsRefused() {
        reject(m -> node(m, "Softmax").setOpType("Sigmoid"), "in layer 0, the attention scores do not pass a Softmax");
    }

    @Test
    void anUnknownActivationIsRefused() {
        reject(m -> node(m, "Gelu").setOpType("Sigmoid"), "in layer 0, the intermediate activation (Sigmoid) is none of");
    }

    @Test
    void readableNamesInEachOthersPlaceAreRefused() {
        String query = "encoder.layer.1.attention.self.query.bias";
        String key = "encoder.layer.1.attention.self.key.bias";
        reject(m -> {
            GraphProto.Builder g = m.getGraphBuilder();
            for (TensorProto.Builder t : g.getInitializerBuilderList()) {
                t.setName(swap(t.getName(), query, key));
            }
            for (NodeProto.Builder n : g.getNodeBuilderList()) {
                for (int i = 0; i < n.getInputCount(); i++) {
                    n.setInput(i, swap(n.getInput(i), query, key));
                }
            }
        }, "initializer \"" + key + "\" sits where the graph uses " + query + ", so its name and its place disagree.");
    }

    private static String swap(String name, String a, String b) {
        return name.equals(a) ? b : name.equals(b) ? a : name;
    }

    @Test
    void aWeightThatIsNotFloatIsRefused() {
        reject(m -> m.getGraphBuilder().getInitializerBuilder(0).setDataType(TensorProto.DataType.INT32_VALUE),
                "weight embeddings.word_embeddings.weight (initializer \"embeddings.word_embeddings.weight\") is INT32,"
                        + " but Tandem reads only FLOAT (f32) weights.");
    }

    private static NodeProto.Builder node(ModelProto.Builder m, String op) {
        return m.getGraphBuilder().getNodeBuilderList().stream().filter(n -> n.getOpType().equals(op)).findFirst().orElseThrow();
    }

    private void reject(Consumer<ModelProto.Builder> breakIt, String part) {
        ModelProto.Builder m = TinyBertOnnx.model();
        breakIt.accept(m);
        try (OnnxModel model = OnnxModel.read(TinyBertOnnx.write(m, dir.resolve("broken.onnx")))) {
            String message = assertThrows(TandemException.class, () -> BertOnnxWeights.of(model)).getMessage();
            assertTrue(message.startsWith("broken.onnx is not a BERT encoder Tandem can read: "), message);
            assertTrue(message.contains(part), () -> "lacks \"" + part + "\": " + message);
            assertTrue(message.endsWith(".") && !message.contains("\n"), message);
        }
    }
}
