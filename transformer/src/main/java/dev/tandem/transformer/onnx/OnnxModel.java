package dev.tandem.transformer.onnx;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.onnx.proto.OnnxProto.AttributeProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.GraphProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.ModelProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.NodeProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.OperatorSetIdProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.TensorProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.TensorShapeProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.ValueInfoProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.Version;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An ONNX model: a {@code ModelProto} (onnx.proto, compiled into {@code dev.tandem.transformer.onnx.proto} by
 * the build) read with protobuf-java, checked, and shown as plain values — the graph's initializers
 * ({@link OnnxTensor}), its nodes in file order (which ONNX requires to be topological), and its inputs and
 * outputs. Nothing here knows about any architecture; {@link BertOnnxWeights} reads a BERT encoder out of it.
 *
 * <p>A model read from a file ({@link #read(Path)}) parses a read-only mapping of it with protobuf's aliasing
 * on, so tensor data stays in the file's pages until copied out, and is valid until {@link #close()}. A model
 * read from a stream ({@link #read(InputStream, String)}, a class-path resource) holds its data on the heap,
 * and closing it does nothing.
 *
 * <p>Every failure is a one-sentence {@link TandemException} naming the file: not ONNX, truncated, empty, an
 * IR version newer than this onnx.proto, no default-domain opset, no graph, an initializer whose data does
 * not fit its shape or lives in an external file.
 */
public final class OnnxModel implements AutoCloseable {

    /** The default operator domain, which ONNX spells as "" or "ai.onnx". */
    private static final List<String> DEFAULT_DOMAINS = List.of("", "ai.onnx");

    private final String source;
    private final Arena arena;
    private final long irVersion;
    private final long opsetVersion;
    private final String producer;
    private final List<OnnxTensor> initializers;
    private final Map<String, OnnxTensor> initializerByName;
    private final List<Node> nodes;
    private final List<Value> inputs;
    private final List<Value> outputs;
    private final AtomicBoolean closed = new AtomicBoolean();

    /** A node of the graph: its operator, the names of the values it reads and writes, its attributes. */
    public record Node(String name, String opType, String domain, List<String> inputs, List<String> outputs,
                       Map<String, Attribute> attributes) {
        public Node {
            inputs = List.copyOf(inputs);
            outputs = List.copyOf(outputs);
            attributes = Collections.unmodifiableMap(new LinkedHashMap<>(attributes));
        }

        public Optional<Attribute> attribute(String attributeName) {
            return Optional.ofNullable(attributes.get(attributeName));
        }

        /** Input {@code i}, or "" when the node has fewer (ONNX also writes "" for a skipped optional input). */
        public String input(int i) {
            return i < inputs.size() ? inputs.get(i) : "";
        }

        /** {@code name} when the exporter kept one, else the op type and first output. */
        public String label() {
            return name.isEmpty() ? opType + " → " + (outputs.isEmpty() ? "?" : outputs.getFirst()) : name;
        }
    }

    /**
     * A graph input or output: its name, element type ("INT64", "FLOAT", ...) and shape, each dimension a
     * number, a symbolic name ("batch_size") or "?" when the file leaves it open.
     */
    public record Value(String name, String elementType, List<String> shape) {
        public Value {
            shape = List.copyOf(shape);
        }
    }

    /** A node attribute, one record per ONNX attribute kind. */
    public sealed interface Attribute {
        String name();

        record FloatValue(String name, float value) implements Attribute {
        }

        record IntValue(String name, long value) implements Attribute {
        }

        record StringValue(String name, String value) implements Attribute {
        }

        record TensorValue(String name, OnnxTensor value) implements Attribute {
        }

        record Floats(String name, float[] values) implements Attribute {
            public Floats {
                values = values.clone();
            }

            @Override
            public float[] values() {
                return values.clone();
            }

            @Override
            public boolean equals(Object o) {
                return o instanceof Floats other && name.equals(other.name) && Arrays.equals(values, other.values);
            }

            @Override
            public int hashCode() {
                return name.hashCode() * 31 + Arrays.hashCode(values);
            }

            @Override
            public String toString() {
                return name + "=" + Arrays.toString(values);
            }
        }

        record Ints(String name, long[] values) implements Attribute {
            public Ints {
                values = values.clone();
            }

            @Override
            public long[] values() {
                return values.clone();
            }

            @Override
            public boolean equals(Object o) {
                return o instanceof Ints other && name.equals(other.name) && Arrays.equals(values, other.values);
            }

            @Override
            public int hashCode() {
                return name.hashCode() * 31 + Arrays.hashCode(values);
            }

            @Override
            public String toString() {
                return name + "=" + Arrays.toString(values);
            }
        }

        record Strings(String name, List<String> values) implements Attribute {
            public Strings {
                values = List.copyOf(values);
            }
        }

        /** A graph, sparse tensor or type (or a list of them), kept by its kind only: no encoder uses them. */
        record Other(String name, String kind) implements Attribute {
        }
    }

    private OnnxModel(String source, Arena arena, ModelProto model) {
        this.source = source;
        this.arena = arena;
        this.irVersion = model.getIrVersion();
        this.opsetVersion = defaultOpset(source, model);
        this.producer = (model.getProducerName() + " " + model.getProducerVersion()).strip();
        GraphProto g = model.getGraph();
        List<OnnxTensor> inits = new ArrayList<>(g.getInitializerCount());
        Map<String, OnnxTensor> byName = new LinkedHashMap<>();
        for (TensorProto t : g.getInitializerList()) {
            OnnxTensor tensor = new OnnxTensor(source, t.getName(), "initializer \"" + t.getName() + "\"", t);
            if (byName.putIfAbsent(t.getName(), tensor) != null) {
                throw new TandemException(source + ": two initializers are named \"" + t.getName() + "\".");
            }
            inits.add(tensor);
        }
        this.initializers = List.copyOf(inits);
        this.initializerByName = Collections.unmodifiableMap(byName);
        List<Node> ns = new ArrayList<>(g.getNodeCount());
        for (NodeProto n : g.getNodeList()) {
            ns.add(node(source, n));
        }
        this.nodes = List.copyOf(ns);
        this.inputs = g.getInputList().stream().map(OnnxModel::value).toList();
        this.outputs = g.getOutputList().stream().map(OnnxModel::value).toList();
    }

    /**
     * Reads the ONNX model in {@code file} through a read-only mapping of it.
     *
     * @throws TandemException when the file is missing, unreadable, over 2 GiB, or not a valid ONNX model
     */
    public static OnnxModel read(Path file) {
        String name = file.getFileName() == null ? file.toString() : file.getFileName().toString();
        if (Files.isDirectory(file)) {
            throw new TandemException(name + " is a directory, not an ONNX model file.");
        }
        Arena arena = Arena.ofShared();
        try {
            MemorySegment whole;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                long size = ch.size();
                if (size == 0) {
                    throw new TandemException(name + " is empty, not an ONNX model.");
                }
                if (size > Integer.MAX_VALUE) {
                    throw new TandemException(name + " is " + size + " bytes, over the 2 GiB a protobuf message can"
                            + " hold; models that large keep their weights as external data, which Tandem does not read.");
                }
                whole = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            }
            CodedInputStream in = CodedInputStream.newInstance(whole.asByteBuffer());
            in.enableAliasing(true); // tensor bytes stay views of the mapping
            in.setSizeLimit(Integer.MAX_VALUE);
            return new OnnxModel(name, arena, parse(name, in));
        } catch (NoSuchFileException e) {
            arena.close();
            throw new TandemException("ONNX model file not found: " + file + ".", e);
        } catch (IOException e) {
            arena.close();
            throw new TandemException(name + ": the file could not be read (" + IoErrors.reason(e) + ").", e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * Reads an ONNX model from {@code in} (read to its end, not closed); {@code source} names it in messages.
     *
     * @throws TandemException when the stream fails or does not hold a valid ONNX model
     */
    public static OnnxModel read(InputStream in, String source) {
        try {
            CodedInputStream coded = CodedInputStream.newInstance(in, 1 << 16);
            coded.setSizeLimit(Integer.MAX_VALUE);
            return new OnnxModel(source, null, parse(source, coded));
        } catch (IOException e) {
            throw new TandemException(source + ": the model could not be read (" + IoErrors.reason(e) + ").", e);
        }
    }

    /**
     * Reads the ONNX model that the class path holds as {@code resource} (for example the embedded
     * all-MiniLM-L6-v2, {@link BertOnnxWeights#MINILM_MODEL}).
     *
     * @throws TandemException when there is no such resource, or it is not a valid ONNX model
     */
    public static OnnxModel readResource(String resource) {
        ClassLoader loader = OnnxModel.class.getClassLoader();
        try (InputStream in = loader.getResourceAsStream(resource)) {
            if (in == null) {
                throw new TandemException("the class path has no resource " + resource + ".");
            }
            return read(in, resource);
        } catch (IOException e) {
            throw new TandemException(resource + ": the resource could not be read (" + IoErrors.reason(e) + ").", e);
        }
    }

    private static ModelProto parse(String source, CodedInputStream in) throws IOException {
        ModelProto model;
        try {
            model = ModelProto.parseFrom(in);
        } catch (InvalidProtocolBufferException e) {
            String why = e.getMessage() == null ? "" : e.getMessage();
            // A cut-off model has parsed its ir_version (every exporter writes it first); noise whose first
            // bytes happen to claim a long field has not.
            if (why.contains("input ended unexpectedly") && e.getUnfinishedMessage() instanceof ModelProto partial
                    && partial.getIrVersion() > 0 && partial.getIrVersion() <= Version.IR_VERSION_VALUE) {
                throw new TandemException(source + " is truncated: it ends in the middle of a protobuf field.", e);
            }
            throw new TandemException(source + " is not an ONNX model: it does not parse as protobuf ("
                    + firstSentence(why) + ").", e);
        }
        if (model.getSerializedSize() == 0) {
            throw new TandemException(source + " is empty, not an ONNX model.");
        }
        if (!model.hasIrVersion() || model.getIrVersion() <= 0) {
            throw new TandemException(source + " is not an ONNX model: it has no IR version (ir_version).");
        }
        if (model.getIrVersion() > Version.IR_VERSION_VALUE) {
            throw new TandemException(source + " has ONNX IR version " + model.getIrVersion() + ", newer than the "
                    + Version.IR_VERSION_VALUE + " this reader's onnx.proto describes.");
        }
        if (!model.hasGraph()) {
            throw new TandemException(source + " is an ONNX model without a graph.");
        }
        return model;
    }

    private static long defaultOpset(String source, ModelProto model) {
        for (OperatorSetIdProto o : model.getOpsetImportList()) {
            if (DEFAULT_DOMAINS.contains(o.getDomain())) {
                return o.getVersion();
            }
        }
        throw new TandemException(source + " imports no opset of the default ONNX domain, so its operators are"
                + " undefined (is the file cut short?).");
    }

    private static String firstSentence(String message) {
        String s = message.strip();
        int dot = s.indexOf(". ");
        if (dot > 0) {
            s = s.substring(0, dot);
        }
        if (s.endsWith(".")) {
            s = s.substring(0, s.length() - 1);
        }
        return s.isEmpty() ? "no reason given" : s.substring(0, 1).toLowerCase(Locale.ROOT) + s.substring(1);
    }

    private static Node node(String source, NodeProto n) {
        Map<String, Attribute> attrs = new LinkedHashMap<>();
        for (AttributeProto a : n.getAttributeList()) {
            attrs.put(a.getName(), attribute(source, n, a));
        }
        return new Node(n.getName(), n.getOpType(), n.getDomain(), n.getInputList(), n.getOutputList(), attrs);
    }

    private static Attribute attribute(String source, NodeProto n, AttributeProto a) {
        String name = a.getName();
        AttributeProto.AttributeType type = a.getType();
        if (type == AttributeProto.AttributeType.UNDEFINED) {
            type = inferredType(a); // files from before IR version 2 leave the type out
        }
        return switch (type) {
            case FLOAT -> new Attribute.FloatValue(name, a.getF());
            case INT -> new Attribute.IntValue(name, a.getI());
            case STRING -> new Attribute.StringValue(name, a.getS().toStringUtf8());
            case TENSOR -> {
                String what = n.getOutputCount() > 0 ? "the constant \"" + n.getOutput(0) + "\""
                        : "attribute " + name + " of node \"" + n.getName() + "\"";
                String tensorName = n.getOutputCount() > 0 ? n.getOutput(0) : a.getT().getName();
                yield new Attribute.TensorValue(name, new OnnxTensor(source, tensorName, what, a.getT()));
            }
            case FLOATS -> {
                float[] v = new float[a.getFloatsCount()];
                for (int i = 0; i < v.length; i++) {
                    v[i] = a.getFloats(i);
                }
                yield new Attribute.Floats(name, v);
            }
            case INTS -> new Attribute.Ints(name, a.getIntsList().stream().mapToLong(Long::longValue).toArray());
            case STRINGS -> new Attribute.Strings(name, a.getStringsList().stream().map(s -> s.toStringUtf8()).toList());
            default -> new Attribute.Other(name, type.name());
        };
    }

    private static AttributeProto.AttributeType inferredType(AttributeProto a) {
        if (a.hasF()) {
            return AttributeProto.AttributeType.FLOAT;
        }
        if (a.hasI()) {
            return AttributeProto.AttributeType.INT;
        }
        if (a.hasS()) {
            return AttributeProto.AttributeType.STRING;
        }
        if (a.hasT()) {
            return AttributeProto.AttributeType.TENSOR;
        }
        if (a.getFloatsCount() > 0) {
            return AttributeProto.AttributeType.FLOATS;
        }
        if (a.getIntsCount() > 0) {
            return AttributeProto.AttributeType.INTS;
        }
        if (a.getStringsCount() > 0) {
            return AttributeProto.AttributeType.STRINGS;
        }
        return AttributeProto.AttributeType.UNDEFINED;
    }

    private static Value value(ValueInfoProto v) {
        if (!v.getType().hasTensorType()) {
            return new Value(v.getName(), "not a tensor", List.of());
        }
        var tensor = v.getType().getTensorType();
        TensorProto.DataType type = TensorProto.DataType.forNumber(tensor.getElemType());
        List<String> shape = new ArrayList<>();
        for (TensorShapeProto.Dimension d : tensor.getShape().getDimList()) {
            shape.add(d.hasDimValue() ? Long.toString(d.getDimValue()) : d.hasDimParam() ? d.getDimParam() : "?");
        }
        return new Value(v.getName(), type == null ? "type " + tensor.getElemType() : type.name(), shape);
    }

    /** The file (or resource) name the model was read from, as messages name it. */
    public String source() {
        return source;
    }

    public long irVersion() {
        return irVersion;
    }

    /** The version of the default ONNX operator set the graph uses. */
    public long opsetVersion() {
        return opsetVersion;
    }

    /** The exporter's name and version ("pytorch 2.0.1"), or "" when the file names none. */
    public String producer() {
        return producer;
    }

    /** The graph's initializers (its constant tensors: the weights), in file order. */
    public List<OnnxTensor> initializers() {
        return initializers;
    }

    public Optional<OnnxTensor> initializer(String name) {
        return Optional.ofNullable(initializerByName.get(name));
    }

    /** The graph's nodes in file order, which ONNX requires to be a topological order. */
    public List<Node> nodes() {
        return nodes;
    }

    /** The graph's inputs that are not initializers: what a caller feeds. */
    public List<Value> inputs() {
        return inputs.stream().filter(v -> !initializerByName.containsKey(v.name())).toList();
    }

    public List<Value> outputs() {
        return outputs;
    }

    /** Unmaps the file a model was read from; its tensors' data is unreadable afterwards. Idempotent. */
    @Override
    public void close() {
        if (arena != null && closed.compareAndSet(false, true)) {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return source + " (ONNX IR " + irVersion + ", opset " + opsetVersion + ", " + initializers.size()
                + " initializers, " + nodes.size() + " nodes)";
    }
}
