package dev.tandem.transformer.onnx;

import com.google.protobuf.ByteString;
import dev.tandem.transformer.onnx.proto.OnnxProto.AttributeProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.GraphProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.ModelProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.NodeProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.OperatorSetIdProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.TensorProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.TensorShapeProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.TypeProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.ValueInfoProto;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * A BERT encoder written as an ONNX graph by hand, spelled unlike PyTorch's opset-11 export of MiniLM: fused
 * {@code LayerNormalization} and {@code Gelu} nodes (opset 20), constant Reshape shapes, {@code Add(x, bias)}
 * rather than {@code Add(bias, x)}, biases in {@code float_data} rather than {@code raw_data}. Tests edit the
 * returned builder to break it.
 */
final class TinyBertOnnx {
    static final int HIDDEN = 8;
    static final int HEADS = 2;
    static final int INTERMEDIATE = 12;
    static final int VOCAB = 11;
    static final int POSITIONS = 7;
    static final int TYPES = 2;
    static final int LAYERS = 2;
    static final float EPS = 1e-5f;

    private final GraphProto.Builder g = GraphProto.newBuilder().setName("tiny_bert");
    private final Random random = new Random(17);
    private int matMulNames = 100;

    private TinyBertOnnx() {
    }

    static ModelProto.Builder model() {
        TinyBertOnnx t = new TinyBertOnnx();
        t.build();
        return ModelProto.newBuilder().setIrVersion(9).setProducerName("hand").setGraph(t.g)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(20));
    }

    static Path write(ModelProto.Builder model, Path file) {
        try {
            Files.write(file, model.build().toByteArray());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return file;
    }

    private void build() {
        for (String in : new String[] {"input_ids", "attention_mask", "token_type_ids"}) {
            g.addInput(value(in, TensorProto.DataType.INT64_VALUE, "batch", "sequence"));
        }
        matrix("embeddings.word_embeddings.weight", VOCAB, HIDDEN);
        matrix("embeddings.position_embeddings.weight", POSITIONS, HIDDEN);
        matrix("embeddings.token_type_embeddings.weight", TYPES, HIDDEN);
        g.addInitializer(TensorProto.newBuilder().setName("embeddings.position_ids").setDataType(TensorProto.DataType.INT64_VALUE)
                .addDims(1).addDims(POSITIONS).addAllInt64Data(java.util.stream.LongStream.range(0, POSITIONS).boxed().toList()));
        node("Gather", "word", "embeddings.word_embeddings.weight", "input_ids");
        node("Gather", "type", "embeddings.token_type_embeddings.weight", "token_type_ids");
        node("Gather", "position", "embeddings.position_embeddings.weight", "embeddings.position_ids");
        node("Add", "sum1", "word", "type");
        node("Add", "sum2", "sum1", "position");
        String h = norm("embeddings.LayerNorm", "sum2");
        node("Cast", "mask", "attention_mask").addAttribute(intAttr("to", TensorProto.DataType.FLOAT_VALUE));
        for (int i = 0; i < LAYERS; i++) {
            h = layer(i, h);
        }
        g.addOutput(value(h, TensorProto.DataType.FLOAT_VALUE, "batch", "sequence", Integer.toString(HIDDEN)));
    }

    private String layer(int i, String h) {
        String p = "encoder.layer." + i + ".";
        String l = "l" + i + "/";
        String q = linear(p + "attention.self.query", l + "q", h, HIDDEN, HIDDEN);
        String k = linear(p + "attention.self.key", l + "k", h, HIDDEN, HIDDEN);
        String v = linear(p + "attention.self.value", l + "v", h, HIDDEN, HIDDEN);
        constant(l + "split", 0, 0, HEADS, HIDDEN / HEADS);
        node("Reshape", l + "q4", q, l + "split");
        node("Reshape", l + "k4", k, l + "split");
        node("Reshape", l + "v4", v, l + "split");
        node("Transpose", l + "qt", l + "q4").addAttribute(intsAttr("perm", 0, 2, 1, 3));
        node("Transpose", l + "kt", l + "k4").addAttribute(intsAttr("perm", 0, 2, 3, 1));
        node("Transpose", l + "vt", l + "v4").addAttribute(intsAttr("perm", 0, 2, 1, 3));
        node("MatMul", l + "scores", l + "qt", l + "kt");
        scalar(l + "scale", (float) Math.sqrt(HIDDEN / HEADS));
        node("Div", l + "scaled", l + "scores", l + "scale");
        node("Add", l + "masked", l + "scaled", "mask");
        node("Softmax", l + "probs", l + "masked").addAttribute(intAttr("axis", -1));
        node("MatMul", l + "context", l + "probs", l + "vt");
        node("Transpose", l + "ct", l + "context").addAttribute(intsAttr("perm", 0, 2, 1, 3));
        constant(l + "merge", 0, 0, HIDDEN);
        node("Reshape", l + "c", l + "ct", l + "merge");
        String o = linear(p + "attention.output.dense", l + "o", l + "c", HIDDEN, HIDDEN);
        node("Add", l + "res1", o, h);
        String a = norm(p + "attention.output.LayerNorm", l + "res1");
        String up = linear(p + "intermediate.dense", l + "up", a, HIDDEN, INTERMEDIATE);
        node("Gelu", l + "act", up);
        String down = linear(p + "output.dense", l + "down", l + "act", INTERMEDIATE, HIDDEN);
        node("Add", l + "res2", down, a);
        return norm(p + "output.LayerNorm", l + "res2");
    }

    /** MatMul by an [in, out] weight PyTorch-style named "onnx::MatMul_N", then Add(x, bias). */
    private String linear(String hf, String out, String x, int in, int outDim) {
        String w = "onnx::MatMul_" + matMulNames++;
        matrix(w, in, outDim);
        vector(hf + ".bias", outDim);
        node("MatMul", out + "_mm", x, w);
        node("Add", out, out + "_mm", hf + ".bias");
        return out;
    }

    private String norm(String hf, String x) {
        vector(hf + ".weight", HIDDEN);
        vector(hf + ".bias", HIDDEN);
        String out = hf + "/out";
        node("LayerNormalization", out, x, hf + ".weight", hf + ".bias").addAttribute(
                AttributeProto.newBuilder().setName("epsilon").setType(AttributeProto.AttributeType.FLOAT).setF(EPS));
        return out;
    }

    private void matrix(String name, int rows, int cols) {
        ByteBuffer b = ByteBuffer.allocate(rows * cols * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < rows * cols; i++) {
            b.putFloat(random.nextFloat() - 0.5f);
        }
        g.addInitializer(TensorProto.newBuilder().setName(name).setDataType(TensorProto.DataType.FLOAT_VALUE)
                .addDims(rows).addDims(cols).setRawData(ByteString.copyFrom(b.array())));
    }

    private void vector(String name, int n) {
        TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(TensorProto.DataType.FLOAT_VALUE).addDims(n);
        for (int i = 0; i < n; i++) {
            t.addFloatData(random.nextFloat());
        }
        g.addInitializer(t);
    }

    private void constant(String out, long... values) {
        TensorProto.Builder t = TensorProto.newBuilder().setDataType(TensorProto.DataType.INT64_VALUE).addDims(values.length);
        for (long v : values) {
            t.addInt64Data(v);
        }
        node("Constant", out).addAttribute(AttributeProto.newBuilder().setName("value")
                .setType(AttributeProto.AttributeType.TENSOR).setT(t));
    }

    private void scalar(String out, float value) {
        node("Constant", out).addAttribute(AttributeProto.newBuilder().setName("value").setType(AttributeProto.AttributeType.TENSOR)
                .setT(TensorProto.newBuilder().setDataType(TensorProto.DataType.FLOAT_VALUE).addFloatData(value)));
    }

    private NodeProto.Builder node(String op, String out, String... in) {
        return g.addNodeBuilder().setOpType(op).setName("/" + out).addOutput(out).addAllInput(java.util.List.of(in));
    }

    private static AttributeProto intAttr(String name, long v) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(v).build();
    }

    private static AttributeProto intsAttr(String name, long... v) {
        AttributeProto.Builder a = AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INTS);
        for (long x : v) {
            a.addInts(x);
        }
        return a.build();
    }

    private static ValueInfoProto value(String name, int elemType, String... dims) {
        TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
        for (String d : dims) {
            if (d.chars().allMatch(Character::isDigit)) {
                shape.addDimBuilder().setDimValue(Long.parseLong(d));
            } else {
                shape.addDimBuilder().setDimParam(d);
            }
        }
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder()
                .setTensorType(TypeProto.Tensor.newBuilder().setElemType(elemType).setShape(shape))).build();
    }
}
