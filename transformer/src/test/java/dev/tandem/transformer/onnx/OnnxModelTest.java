package dev.tandem.transformer.onnx;

import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.onnx.OnnxModel.Attribute;
import dev.tandem.transformer.onnx.OnnxModel.Node;
import dev.tandem.transformer.onnx.OnnxModel.Value;
import dev.tandem.transformer.onnx.proto.OnnxProto.ModelProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.TensorProto;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Reading ONNX files: the embedded MiniLM (parsed once for the class), small hand-built models, broken files. */
class OnnxModelTest {

    private static OnnxModel miniLm;

    @TempDir
    Path dir;

    @BeforeAll
    static void readMiniLm() {
        miniLm = OnnxModel.readResource(BertOnnxWeights.MINILM_MODEL);
    }

    @AfterAll
    static void release() {
        miniLm = null;
    }

    private static InputStream miniLmStream() {
        return OnnxModel.class.getClassLoader().getResourceAsStream(BertOnnxWeights.MINILM_MODEL);
    }

    @Test
    void theEmbeddedMiniLmResourceReadsAsAnOnnxGraph() {
        OnnxModel m = miniLm;
        assertEquals(BertOnnxWeights.MINILM_MODEL, m.source());
        assertEquals(6, m.irVersion());
        assertEquals(11, m.opsetVersion());
        assertEquals("pytorch 2.0.1", m.producer());
        assertEquals(102, m.initializers().size());
        assertEquals(637, m.nodes().size());
        assertEquals(List.of(
                new Value("input_ids", "INT64", List.of("batch_size", "sequence_length")),
                new Value("attention_mask", "INT64", List.of("batch_size", "sequence_length")),
                new Value("token_type_ids", "INT64", List.of("batch_size", "sequence_length"))), m.inputs());
        assertEquals(List.of(new Value("last_hidden_state", "FLOAT", List.of("batch_size", "sequence_length", "384"))),
                m.outputs());
        assertTrue(OnnxModel.class.getClassLoader().getResource(BertOnnxWeights.MINILM_TOKENIZER) != null,
                "the tokenizer is not on the class path beside the model");
    }

    @Test
    void nodesKeepOpsInputsOutputsAndTypedAttributes() {
        Node first = miniLm.nodes().getFirst();
        assertEquals("Unsqueeze", first.opType());
        assertEquals(List.of("attention_mask"), first.inputs());
        assertEquals(List.of("/Unsqueeze_output_0"), first.outputs());
        assertArrayEquals(new long[] {1}, ((Attribute.Ints) first.attribute("axes").orElseThrow()).values());

        Node eps = node("/embeddings/LayerNorm/Constant_1");
        OnnxTensor value = ((Attribute.TensorValue) eps.attribute("value").orElseThrow()).value();
        assertEquals("FLOAT", value.dataType());
        assertEquals(0, value.rank());
        assertEquals(1e-12f, value.floats()[0]);

        Node heads = node("/encoder/layer.0/attention/self/Constant_2");
        assertArrayEquals(new long[] {12}, ((Attribute.TensorValue) heads.attribute("value").orElseThrow()).value().longs());
        assertEquals(new Attribute.IntValue("axis", 3), node("/encoder/layer.0/attention/self/Softmax").attribute("axis").orElseThrow());
    }

    @Test
    void initializersGiveTheirValuesAsFloatsAndAsTensors() {
        OnnxTensor word = miniLm.initializer("embeddings.word_embeddings.weight").orElseThrow();
        assertArrayEquals(new long[] {30522, 384}, word.dims());
        float[] values = word.floats();
        assertEquals(30522 * 384, values.length);
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = word.toTensor(arena);
            assertArrayEquals(new long[] {30522, 384}, t.shape());
            for (long i : new long[] {0, 1, 384, 1_000_003, values.length - 1L}) {
                assertEquals(values[(int) i], t.getFloat(i));
            }
        }
        OnnxTensor positions = miniLm.initializer("embeddings.position_ids").orElseThrow();
        assertEquals("INT64", positions.dataType());
        long[] ids = positions.longs();
        assertEquals(511, ids[511]);
        assertTrue(miniLm.initializer("no such weight").isEmpty());
    }

    @Test
    void aFileIsReadThroughItsMappingToTheSameValuesAsTheStream() throws IOException {
        Path file = dir.resolve("model.onnx");
        try (InputStream in = miniLmStream()) {
            Files.copy(in, file);
        }
        try (OnnxModel m = OnnxModel.read(file)) {
            assertEquals("model.onnx", m.source());
            assertEquals(miniLm.initializers().size(), m.initializers().size());
            for (String name : List.of("onnx::MatMul_787", "encoder.layer.5.output.LayerNorm.bias")) {
                assertArrayEquals(miniLm.initializer(name).orElseThrow().floats(), m.initializer(name).orElseThrow().floats(), name);
            }
            assertEquals(miniLm.nodes().stream().map(Node::toString).toList(), m.nodes().stream().map(Node::toString).toList());
        }
    }

    @Test
    void typedFieldsAndRawDataReadAlike() {
        try (OnnxModel m = OnnxModel.read(TinyBertOnnx.write(TinyBertOnnx.model(), dir.resolve("tiny.onnx")))) {
            OnnxTensor bias = m.initializer("encoder.layer.0.attention.self.query.bias").orElseThrow(); // float_data
            OnnxTensor weight = m.initializer("onnx::MatMul_100").orElseThrow(); // raw_data
            assertEquals(TinyBertOnnx.HIDDEN, bias.floats().length);
            try (Arena arena = Arena.ofConfined()) {
                assertArrayEquals(bias.floats(), bias.toTensor(arena).toFloatArray());
                assertArrayEquals(weight.floats(), weight.toTensor(arena).toFloatArray());
            }
            assertArrayEquals(new long[] {0, 1, 2, 3, 4, 5, 6}, m.initializer("embeddings.position_ids").orElseThrow().longs());
        }
    }

    // ---- broken files: each one sentence naming the file ----

    @Test
    void randomBytesAreNotAnOnnxModel() throws IOException {
        byte[] noise = new byte[4096];
        new Random(1).nextBytes(noise);
        reject(Files.write(dir.resolve("noise.onnx"), noise), "noise.onnx is not an ONNX model");
        // field 2 (producer_name) claiming 127 bytes that are not there: cut short, but not a cut-off model
        reject(Files.write(dir.resolve("claim.onnx"), new byte[] {0x12, 0x7f, 'p'}), "claim.onnx is not an ONNX model");
    }

    @Test
    void aTruncatedCopyIsReportedAsTruncated() throws IOException {
        try (InputStream in = miniLmStream()) {
            reject(Files.write(dir.resolve("head.onnx"), in.readNBytes(1 << 20)), "head.onnx is truncated");
        }
        byte[] tiny = TinyBertOnnx.model().build().toByteArray();
        rejectStream(Arrays.copyOf(tiny, tiny.length / 2), "cut.onnx is truncated");
        rejectStream(Arrays.copyOf(tiny, tiny.length - 1), "cut.onnx is truncated");
    }

    @Test
    void aModelCutAfterItsGraphLacksItsOpset() throws IOException {
        ModelProto.Builder m = TinyBertOnnx.model().clearOpsetImport();
        reject(TinyBertOnnx.write(m, dir.resolve("cut.onnx")), "cut.onnx imports no opset of the default ONNX domain");
    }

    @Test
    void anEmptyFileIsEmpty() throws IOException {
        reject(Files.write(dir.resolve("empty.onnx"), new byte[0]), "empty.onnx is empty, not an ONNX model");
        rejectStream(new byte[0], "cut.onnx is empty, not an ONNX model");
    }

    @Test
    void missingFilesAndDirectoriesAreNamed() {
        reject(dir.resolve("absent.onnx"), "ONNX model file not found: ");
        reject(dir, dir.getFileName() + " is a directory");
        TandemException e = assertThrows(TandemException.class, () -> OnnxModel.readResource("no/such.onnx"));
        assertEquals("the class path has no resource no/such.onnx.", e.getMessage());
    }

    @Test
    void modelsWithoutIrVersionOrGraphOrWithANewerIrAreRefused() {
        reject(TinyBertOnnx.write(TinyBertOnnx.model().clearIrVersion(), dir.resolve("a.onnx")),
                "a.onnx is not an ONNX model: it has no IR version");
        reject(TinyBertOnnx.write(TinyBertOnnx.model().clearGraph(), dir.resolve("b.onnx")), "b.onnx is an ONNX model without a graph");
        reject(TinyBertOnnx.write(TinyBertOnnx.model().setIrVersion(99), dir.resolve("c.onnx")),
                "c.onnx has ONNX IR version 99, newer than the 14");
    }

    @Test
    void externalDataIsRefused() {
        ModelProto.Builder m = TinyBertOnnx.model();
        m.getGraphBuilder().getInitializerBuilder(0).setDataLocation(TensorProto.DataLocation.EXTERNAL).clearRawData();
        reject(TinyBertOnnx.write(m, dir.resolve("ext.onnx")),
                "ext.onnx: initializer \"embeddings.word_embeddings.weight\" keeps its data in an external file");
    }

    @Test
    void dataThatDoesNotFitItsShapeIsRefused() {
        ModelProto.Builder m = TinyBertOnnx.model();
        m.getGraphBuilder().getInitializerBuilder(0).addDims(2);
        reject(TinyBertOnnx.write(m, dir.resolve("raw.onnx")), "raw.onnx: initializer \"embeddings.word_embeddings.weight\" has 352 bytes"
                + " of data, but its shape [11, 8, 2] of FLOAT needs 704.");
        ModelProto.Builder typed = TinyBertOnnx.model();
        typed.getGraphBuilder().getInitializerBuilder(3).clearInt64Data();
        reject(TinyBertOnnx.write(typed, dir.resolve("typed.onnx")),
                "typed.onnx: initializer \"embeddings.position_ids\" holds 0 values, but its shape [1, 7] has 7 elements.");
    }

    @Test
    void aWeightOfAnotherTypeIsRefusedWhenReadAsFloats() {
        OnnxTensor ids = miniLm.initializer("embeddings.position_ids").orElseThrow();
        TandemException e = assertThrows(TandemException.class, ids::floats);
        assertEquals("all-minilm-l6-v2.onnx: \"embeddings.position_ids\" is INT64, but Tandem reads only FLOAT (f32) weights.",
                e.getMessage());
        try (Arena arena = Arena.ofConfined()) {
            assertThrows(TandemException.class, () -> ids.toTensor(arena));
        }
    }

    private static Node node(String name) {
        return miniLm.nodes().stream().filter(n -> n.name().equals(name)).findFirst().orElseThrow();
    }

    private static void reject(Path file, String start) {
        assertOneSentence(() -> OnnxModel.read(file), start);
    }

    private static void rejectStream(byte[] bytes, String start) {
        assertOneSentence(() -> OnnxModel.read(new ByteArrayInputStream(bytes), "cut.onnx"), start);
    }

    private static void assertOneSentence(Executable read, String start) {
        String m = assertThrows(TandemException.class, read).getMessage();
        assertTrue(m.startsWith(start), () -> "expected \"" + start + "...\", got: " + m);
        assertTrue(m.endsWith(".") && !m.contains("\n") && !m.contains("Exception"), () -> "not one sentence: " + m);
    }
}
