package dev.tandem.transformer.onnx;

import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.onnx.OnnxModel.Attribute;
import dev.tandem.transformer.onnx.OnnxModel.Node;

import java.lang.foreign.Arena;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A BERT encoder's weights inside an ONNX graph, under Hugging Face's names ({@code BertModel}'s state dict:
 * {@code embeddings.word_embeddings.weight}, {@code encoder.layer.0.attention.self.query.weight}, ...), and
 * its {@link BertGraphShape}.
 *
 * <p>PyTorch's exporter keeps the names of the weights it uses as they are (biases, LayerNorms, embedding
 * tables) but gives a Linear's weight, which it stores transposed for a MatMul, a name of its own
 * ({@code onnx::MatMul_787}). So every weight is found by where it sits in the data flow, never by its name:
 * from the {@code input_ids} Gather through the embedding sums to the first LayerNorm; then, per layer, the
 * three MatMuls that read the layer's input are query, key and value — the one whose result reaches the
 * scores MatMul first is the query, second the key, and the one reaching the MatMul after the Softmax the
 * value —, the MatMul after that context is the attention output, its residual LayerNorm is the attention
 * output LayerNorm, the MatMul reading it is the intermediate, the next MatMul the output, and the residual
 * LayerNorm after it ends the layer. A bias is the Add after its MatMul; a LayerNorm is either one
 * {@code LayerNormalization} node or the ReduceMean–Sub–Pow–ReduceMean–Add–Sqrt–Div–Mul–Add chain older
 * opsets spell it as. Where an initializer does carry a Hugging Face name, it must be the one its place
 * gives it, else the graph is refused.
 *
 * <p>Layout: a Linear weight is returned as Hugging Face stores it, {@code [out, in]}, the transpose of the
 * MatMul's {@code [in, out]} initializer; every other weight as the graph holds it. Tensors are copied out
 * ({@link #tensor}); this object only maps names and is valid while its {@link OnnxModel} is open.
 */
public final class BertOnnxWeights {

    /** all-MiniLM-L6-v2 in ONNX (Xenova's export), on the class path from langchain4j's jar. */
    public static final String MINILM_MODEL = "all-minilm-l6-v2.onnx";
    /** Its WordPiece tokenizer, beside it in the same jar. */
    public static final String MINILM_TOKENIZER = "all-minilm-l6-v2-tokenizer.json";

    /** A Hugging Face BERT weight name, with any prefix ("bert.") before it. */
    private static final Pattern HF_NAME = Pattern.compile("(?:.*\\.)?((?:embeddings|encoder\\.layer\\.\\d+)\\..*)");

    private final String source;
    private final BertGraphShape config;
    private final Map<String, OnnxTensor> byName;
    private final Set<String> transposed;
    private final List<String> unmapped;

    private BertOnnxWeights(String source, BertGraphShape config, Map<String, OnnxTensor> byName, Set<String> transposed,
                            List<String> unmapped) {
        this.source = source;
        this.config = config;
        this.byName = Collections.unmodifiableMap(byName);
        this.transposed = Set.copyOf(transposed);
        this.unmapped = List.copyOf(unmapped);
    }

    /**
     * Finds a BERT encoder's weights and shape in {@code model}'s graph.
     *
     * @throws TandemException when the graph is not a BERT encoder this reader can follow: a missing part,
     *                         a weight of the wrong shape or type, parts that disagree
     */
    public static BertOnnxWeights of(OnnxModel model) {
        return new Walk(model).run();
    }

    public BertGraphShape config() {
        return config;
    }

    /** Every weight's Hugging Face name: the embeddings, then layer by layer. */
    public List<String> names() {
        return List.copyOf(byName.keySet());
    }

    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    /** The name of the ONNX initializer holding weight {@code name} ("onnx::MatMul_787"). */
    public String initializerName(String name) {
        return get(name).name();
    }

    /** Whether weight {@code name} is the transpose of its initializer (every Linear weight is). */
    public boolean isTransposed(String name) {
        get(name);
        return transposed.contains(name);
    }

    /** The shape of weight {@code name} in Hugging Face's layout ({@code [out, in]} for a Linear). */
    public long[] shape(String name) {
        long[] d = get(name).dims();
        return transposed.contains(name) ? new long[] {d[1], d[0]} : d;
    }

    /** A copy of weight {@code name} in Hugging Face's layout, as an f32 tensor in memory of {@code arena}. */
    public Tensor tensor(String name, Arena arena) {
        OnnxTensor t = get(name);
        return transposed.contains(name) ? t.toTransposedTensor(arena) : t.toTensor(arena);
    }

    /**
     * The initializers that are not weights (buffers such as {@code embeddings.position_ids}, or anything
     * after the encoder, such as a pooler), in file order.
     */
    public List<String> unmappedInitializers() {
        return unmapped;
    }

    private OnnxTensor get(String name) {
        OnnxTensor t = byName.get(name);
        if (t == null) {
            throw new TandemException(source + ": the BERT encoder has no weight \"" + name + "\".");
        }
        return t;
    }

    /** One pass over the graph: indexes who produces and who reads each value, then follows the encoder. */
    private static final class Walk {
        private static final long UNKNOWN = Long.MIN_VALUE;

        private record Use(Node node, int slot) {
        }

        private record Norm(String output, OnnxTensor weight, OnnxTensor bias, float eps) {
        }

        /** Where a value flows, up to the first MatMuls: those MatMuls, and the nodes passed on the way. */
        private record Reach(List<Use> matMuls, List<Node> passed) {
            boolean passes(String op) {
                return passed.stream().anyMatch(n -> n.opType().equals(op));
            }
        }

        private final OnnxModel model;
        private final String src;
        private final Map<String, Node> producer = new HashMap<>();
        private final Map<String, List<Use>> uses = new HashMap<>();
        private final Set<String> graphInputs = new HashSet<>();
        private final Map<String, OnnxTensor> mapped = new LinkedHashMap<>();
        private final Set<String> transposed = new HashSet<>();
        private final Set<Float> epsilons = new LinkedHashSet<>();
        private final Set<String> activations = new LinkedHashSet<>();
        private final Set<Long> headCounts = new LinkedHashSet<>();

        Walk(OnnxModel model) {
            this.model = model;
            this.src = model.source();
            for (Node n : model.nodes()) {
                for (String o : n.outputs()) {
                    producer.put(o, n);
                }
                for (int i = 0; i < n.inputs().size(); i++) {
                    uses.computeIfAbsent(n.inputs().get(i), k -> new ArrayList<>()).add(new Use(n, i));
                }
            }
            model.inputs().forEach(v -> graphInputs.add(v.name()));
        }

        BertOnnxWeights run() {
            String h = embeddings();
            int layers = 0;
            while (true) {
                List<Node> projections = uses(h).stream()
                        .filter(u -> u.node.opType().equals("MatMul") && u.slot == 0 && weight(u.node) != null)
                        .map(Use::node).toList();
                if (projections.isEmpty()) {
                    break;
                }
                h = layer(layers, h, projections);
                layers++;
            }
            if (layers == 0) {
                throw fail("no encoder layer follows the embeddings (no MatMul reads the embedding LayerNorm's output)");
            }
            BertGraphShape config = config(layers);
            checkShapes(config);
            checkNames();
            List<String> unmapped = new ArrayList<>();
            Set<OnnxTensor> used = Collections.newSetFromMap(new IdentityHashMap<>());
            used.addAll(mapped.values());
            for (OnnxTensor t : model.initializers()) {
                if (!used.contains(t)) {
                    unmapped.add(t.name());
                }
            }
            Map<String, OnnxTensor> ordered = new LinkedHashMap<>();
            for (String n : hfNames(layers)) {
                ordered.put(n, mapped.get(n));
            }
            return new BertOnnxWeights(src, config, ordered, transposed, unmapped);
        }

        /** BertModel's state-dict order. */
        private static List<String> hfNames(int layers) {
            List<String> names = new ArrayList<>(List.of("embeddings.word_embeddings.weight",
                    "embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
                    "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"));
            for (int i = 0; i < layers; i++) {
                for (String part : List.of("attention.self.query", "attention.self.key", "attention.self.value",
                        "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense", "output.dense",
                        "output.LayerNorm")) {
                    names.add("encoder.layer." + i + "." + part + ".weight");
                    names.add("encoder.layer." + i + "." + part + ".bias");
                }
            }
            return names;
        }

        /** The word, position and token type tables summed into the first LayerNorm; returns its output. */
        private String embeddings() {
            if (!graphInputs.contains("input_ids")) {
                throw fail("the graph has no input named input_ids, so its token embeddings cannot be found");
            }
            Node word = uses("input_ids").stream()
                    .filter(u -> u.node.opType().equals("Gather") && u.slot == 1 && table(u.node) != null)
                    .map(Use::node).findFirst()
                    .orElseThrow(() -> fail("no Gather reads input_ids from an embedding table"));
            put("embeddings.word_embeddings.weight", table(word), false);
            String t = word.outputs().getFirst();
            for (int step = 0; step < 4; step++) {
                Norm norm = norm(t);
                if (norm != null) {
                    if (!mapped.containsKey("embeddings.position_embeddings.weight")
                            || !mapped.containsKey("embeddings.token_type_embeddings.weight")) {
                        throw fail("the embeddings are not the sum of word, position and token type tables");
                    }
                    putNorm("embeddings.LayerNorm", norm);
                    return norm.output;
                }
                Node add = only(t, "Add");
                Node gather = add == null ? null : producer.get(other(add, t));
                OnnxTensor table = gather != null && gather.opType().equals("Gather") ? table(gather) : null;
                if (table == null) {
                    throw fail("the word embeddings do not flow through sums of embedding tables into a LayerNorm");
                }
                String indices = gather.input(1);
                String role = indices.equals("token_type_ids") ? "token_type"
                        : graphInputs.contains(indices) ? null : "position";
                if (role == null || mapped.containsKey("embeddings." + role + "_embeddings.weight")) {
                    throw fail("the embedding table \"" + table.name() + "\" is indexed by " + indices
                            + ", which is neither token_type_ids nor computed positions");
                }
                put("embeddings." + role + "_embeddings.weight", table, false);
                t = add.outputs().getFirst();
            }
            throw fail("the embedding sums do not end in a LayerNorm");
        }

        /** Encoder layer {@code i}, whose input is {@code h}; returns its output. */
        private String layer(int i, String h, List<Node> projections) {
            String p = "encoder.layer." + i + ".";
            if (projections.size() != 3) {
                throw fail("layer " + i + " has " + projections.size() + " MatMuls reading its input, not the three"
                        + " of query, key and value");
            }
            // Each projection's result flows (through its bias, Reshape, Transpose) into one attention MatMul.
            Map<Node, Use> target = new LinkedHashMap<>();
            Map<Node, Node> bias = new HashMap<>();
            for (Node proj : projections) {
                Node b = bias(proj, p + "attention");
                bias.put(proj, b);
                Reach r = reach(b.outputs().getFirst());
                if (r.matMuls.size() != 1 || weight(r.matMuls.getFirst().node) != null) {
                    throw fail("in layer " + i + ", the projection " + proj.label() + " does not feed one attention MatMul");
                }
                target.put(proj, r.matMuls.getFirst());
            }
            Node query = null;
            Node key = null;
            Node value = null;
            for (Node proj : projections) {
                Use u = target.get(proj);
                long sharing = target.values().stream().filter(o -> o.node == u.node).count();
                if (sharing == 2) {
                    if (u.slot == 0) {
                        query = proj;
                    } else {
                        key = proj;
                    }
                } else if (sharing == 1 && u.slot == 1) {
                    value = proj;
                }
            }
            if (query == null || key == null || value == null) {
                throw fail("in layer " + i + ", the three projections do not meet as query·keyᵀ and probabilities·value");
            }
            Node scores = target.get(query).node;
            Node context = target.get(value).node;
            Reach fromScores = reach(scores.outputs().getFirst());
            if (!fromScores.passes("Softmax") || !fromScores.matMuls.contains(new Use(context, 0))) {
                throw fail("in layer " + i + ", the attention scores do not pass a Softmax into the MatMul with the values");
            }
            headCounts.add(heads(i, bias.get(query)));
            put(p + "attention.self.query.weight", weight(query), true);
            put(p + "attention.self.query.bias", biasTensor(bias.get(query), query), false);
            put(p + "attention.self.key.weight", weight(key), true);
            put(p + "attention.self.key.bias", biasTensor(bias.get(key), key), false);
            put(p + "attention.self.value.weight", weight(value), true);
            put(p + "attention.self.value.bias", biasTensor(bias.get(value), value), false);

            Node attnOut = nextWeightedMatMul(context.outputs().getFirst(), i, "the attention context");
            Node attnOutBias = bias(attnOut, p + "attention.output.dense");
            put(p + "attention.output.dense.weight", weight(attnOut), true);
            put(p + "attention.output.dense.bias", biasTensor(attnOutBias, attnOut), false);
            Norm attnNorm = residualNorm(attnOutBias.outputs().getFirst(), h, i, "attention");
            putNorm(p + "attention.output.LayerNorm", attnNorm);

            List<Node> up = uses(attnNorm.output).stream()
                    .filter(u -> u.node.opType().equals("MatMul") && u.slot == 0 && weight(u.node) != null)
                    .map(Use::node).toList();
            if (up.size() != 1) {
                throw fail("in layer " + i + ", " + up.size() + " MatMuls read the attention output, not one intermediate");
            }
            Node inter = up.getFirst();
            Node interBias = bias(inter, p + "intermediate.dense");
            put(p + "intermediate.dense.weight", weight(inter), true);
            put(p + "intermediate.dense.bias", biasTensor(interBias, inter), false);
            activations.add(activation(i, reach(interBias.outputs().getFirst())));
            Node down = nextWeightedMatMul(interBias.outputs().getFirst(), i, "the intermediate activation");
            Node downBias = bias(down, p + "output.dense");
            put(p + "output.dense.weight", weight(down), true);
            put(p + "output.dense.bias", biasTensor(downBias, down), false);
            Norm outNorm = residualNorm(downBias.outputs().getFirst(), attnNorm.output, i, "feed-forward");
            putNorm(p + "output.LayerNorm", outNorm);
            return outNorm.output;
        }

        /** The one MatMul with a weight that {@code t} reaches. */
        private Node nextWeightedMatMul(String t, int layer, String what) {
            Reach r = reach(t);
            if (r.matMuls.size() != 1 || r.matMuls.getFirst().slot != 0 || weight(r.matMuls.getFirst().node) == null) {
                throw fail("in layer " + layer + ", " + what + " does not flow into one MatMul with a weight");
            }
            return r.matMuls.getFirst().node;
        }

        /** The Add of a bias after {@code matMul}. */
        private Node bias(Node matMul, String what) {
            Node add = only(matMul.outputs().getFirst(), "Add");
            if (add == null || biasTensor(add, matMul) == null) {
                throw fail(what + " (" + matMul.label() + ") has no bias Add after it");
            }
            return add;
        }

        private OnnxTensor biasTensor(Node add, Node matMul) {
            OnnxTensor b = model.initializer(other(add, matMul.outputs().getFirst())).orElse(null);
            return b != null && b.rank() == 1 ? b : null;
        }

        /** The LayerNorm after the residual sum of {@code t} and {@code residual}. */
        private Norm residualNorm(String t, String residual, int layer, String what) {
            Node add = only(t, "Add");
            Norm norm = add != null && other(add, t).equals(residual) ? norm(add.outputs().getFirst()) : null;
            if (norm == null) {
                throw fail("in layer " + layer + ", the " + what + " block does not end in a residual Add and a LayerNorm");
            }
            return norm;
        }

        /** The head count, from the Reshape that splits the query into [batch, sequence, heads, head size]. */
        private long heads(int layer, Node queryBias) {
            String q = queryBias.outputs().getFirst();
            for (Use u : uses(q)) {
                if (!u.node.opType().equals("Reshape") || u.slot != 0) {
                    continue;
                }
                long[] shape = constantVector(u.node.input(1));
                if (shape != null && shape.length == 4 && shape[2] > 0 && shape[3] > 0) {
                    return shape[2];
                }
            }
            throw fail("in layer " + layer + ", no Reshape of the query into heads has a constant head count");
        }

        /** The feed-forward activation, from the ops between the intermediate and output MatMuls. */
        private String activation(int layer, Reach r) {
            for (Node n : r.passed) {
                if (n.opType().equals("Gelu")) { // opset 20's fused form
                    boolean tanh = n.attribute("approximate").orElse(null) instanceof Attribute.StringValue a
                            && a.value().equals("tanh");
                    return tanh ? "gelu_new" : "gelu";
                }
            }
            if (r.passes("Erf")) {
                return "gelu";
            }
            if (r.passes("Tanh")) {
                return "gelu_new";
            }
            if (r.passes("Relu")) {
                return "relu";
            }
            Set<String> ops = new TreeSet<>();
            r.passed.forEach(n -> ops.add(n.opType()));
            throw fail("in layer " + layer + ", the intermediate activation (" + String.join(", ", ops)
                    + ") is none of gelu, gelu_new and relu");
        }

        private BertGraphShape config(int layers) {
            if (epsilons.size() != 1) {
                throw fail("its LayerNorms add different epsilons " + epsilons);
            }
            if (activations.size() != 1) {
                throw fail("its layers use different activations " + activations);
            }
            if (headCounts.size() != 1) {
                throw fail("its layers split the query into different head counts " + headCounts);
            }
            long[] word = mapped.get("embeddings.word_embeddings.weight").dims();
            int hidden = Math.toIntExact(word[1]);
            long heads = headCounts.iterator().next();
            if (hidden % heads != 0) {
                throw fail("its hidden size " + hidden + " is not a multiple of its " + heads + " heads");
            }
            return new BertGraphShape(hidden, layers, Math.toIntExact(heads),
                    Math.toIntExact(mapped.get("encoder.layer.0.intermediate.dense.weight").dim(1)),
                    Math.toIntExact(word[0]),
                    Math.toIntExact(mapped.get("embeddings.position_embeddings.weight").dim(0)),
                    Math.toIntExact(mapped.get("embeddings.token_type_embeddings.weight").dim(0)),
                    epsilons.iterator().next(), activations.iterator().next());
        }

        /** Every weight against the shape the config gives it (Hugging Face's layout). */
        private void checkShapes(BertGraphShape c) {
            long hidden = c.hiddenSize();
            long inter = c.intermediateSize();
            for (Map.Entry<String, OnnxTensor> e : mapped.entrySet()) {
                String n = e.getKey();
                long[] expected;
                if (n.startsWith("embeddings.") && n.endsWith("_embeddings.weight")) {
                    expected = new long[] {e.getValue().dim(0), hidden};
                } else if (n.endsWith("intermediate.dense.weight")) {
                    expected = new long[] {inter, hidden};
                } else if (n.endsWith("intermediate.dense.bias")) {
                    expected = new long[] {inter};
                } else if (n.endsWith("output.dense.weight") && !n.contains("attention")) {
                    expected = new long[] {hidden, inter};
                } else if (n.endsWith(".weight") && !n.contains("LayerNorm")) {
                    expected = new long[] {hidden, hidden};
                } else {
                    expected = new long[] {hidden};
                }
                OnnxTensor t = e.getValue();
                long[] d = t.dims();
                long[] actual = transposed.contains(n) ? new long[] {d[1], d[0]} : d;
                if (!Arrays.equals(actual, expected)) {
                    throw fail("weight " + n + " (initializer \"" + t.name() + "\") has shape " + Arrays.toString(actual)
                            + " where " + Arrays.toString(expected) + " was expected");
                }
                if (!t.isFloat()) {
                    throw fail("weight " + n + " (initializer \"" + t.name() + "\") is " + t.dataType()
                            + ", but Tandem reads only FLOAT (f32) weights");
                }
            }
        }

        /** An initializer that carries a Hugging Face name must carry the one its place in the graph gives it. */
        private void checkNames() {
            for (Map.Entry<String, OnnxTensor> e : mapped.entrySet()) {
                Matcher m = HF_NAME.matcher(e.getValue().name());
                if (m.matches() && !m.group(1).equals(e.getKey())) {
                    throw fail("initializer \"" + e.getValue().name() + "\" sits where the graph uses " + e.getKey()
                            + ", so its name and its place disagree");
                }
            }
        }

        // ---- the graph's pieces ----

        /** A LayerNorm whose input is {@code x}, or null. */
        private Norm norm(String x) {
            for (Use u : uses(x)) {
                if (u.slot != 0) {
                    continue;
                }
                if (u.node.opType().equals("LayerNormalization")) {
                    OnnxTensor w = model.initializer(u.node.input(1)).orElse(null);
                    OnnxTensor b = model.initializer(u.node.input(2)).orElse(null);
                    float eps = u.node.attribute("epsilon").map(a -> a instanceof Attribute.FloatValue f ? f.value() : null)
                            .orElse(1e-5f); // ONNX's default
                    if (w != null && b != null) {
                        return new Norm(u.node.outputs().getFirst(), w, b, eps);
                    }
                }
                if (u.node.opType().equals("ReduceMean")) {
                    Norm n = decomposedNorm(x, u.node);
                    if (n != null) {
                        return n;
                    }
                }
            }
            return null;
        }

        /** (x − mean) / sqrt(mean((x − mean)²) + eps) · weight + bias, as opset-11 exports spell it out. */
        private Norm decomposedNorm(String x, Node mean) {
            String m = mean.outputs().getFirst();
            Node sub = uses(m).stream().map(Use::node)
                    .filter(n -> n.opType().equals("Sub") && n.input(0).equals(x) && n.input(1).equals(m))
                    .findFirst().orElse(null);
            if (sub == null) {
                return null;
            }
            String d = sub.outputs().getFirst();
            Node pow = only(d, "Pow");
            if (pow == null || !pow.input(0).equals(d) || !isScalar(pow.input(1), 2f)) {
                return null;
            }
            Node var = only(pow.outputs().getFirst(), "ReduceMean");
            Node addEps = var == null ? null : only(var.outputs().getFirst(), "Add");
            Float eps = addEps == null ? null : scalar(other(addEps, var.outputs().getFirst()));
            Node sqrt = eps == null ? null : only(addEps.outputs().getFirst(), "Sqrt");
            if (sqrt == null) {
                return null;
            }
            Node div = uses(sqrt.outputs().getFirst()).stream().map(Use::node)
                    .filter(n -> n.opType().equals("Div") && n.input(0).equals(d)).findFirst().orElse(null);
            Node mul = div == null ? null : only(div.outputs().getFirst(), "Mul");
            OnnxTensor w = mul == null ? null : model.initializer(other(mul, div.outputs().getFirst())).orElse(null);
            Node add = w == null ? null : only(mul.outputs().getFirst(), "Add");
            OnnxTensor b = add == null ? null : model.initializer(other(add, mul.outputs().getFirst())).orElse(null);
            return b == null ? null : new Norm(add.outputs().getFirst(), w, b, eps);
        }

        /**
         * Follows {@code t} forward to the first MatMuls it meets, not through shape computations (a Shape's
         * output is a size, not the value).
         */
        private Reach reach(String t) {
            List<Use> matMuls = new ArrayList<>();
            List<Node> passed = new ArrayList<>();
            Set<Node> seen = Collections.newSetFromMap(new IdentityHashMap<>());
            ArrayDeque<String> todo = new ArrayDeque<>(List.of(t));
            while (!todo.isEmpty()) {
                for (Use u : uses(todo.poll())) {
                    String op = u.node.opType();
                    if (op.equals("Shape") || op.equals("Size")) {
                        continue;
                    }
                    if (op.equals("MatMul") || op.equals("Gemm")) {
                        if (!matMuls.contains(u)) {
                            matMuls.add(u);
                        }
                        continue;
                    }
                    if (seen.add(u.node)) {
                        passed.add(u.node);
                        todo.addAll(u.node.outputs());
                    }
                }
            }
            return new Reach(matMuls, passed);
        }

        /** A constant 1-D integer value: a Constant, an initializer, or a Concat of them (other parts unknown). */
        private long[] constantVector(String t) {
            OnnxTensor c = constant(t);
            if (c != null) {
                return c.longs();
            }
            Node concat = producer.get(t);
            if (concat == null || !concat.opType().equals("Concat")) {
                return null;
            }
            List<Long> out = new ArrayList<>();
            for (String part : concat.inputs()) {
                OnnxTensor pc = constant(part);
                if (pc != null) {
                    for (long v : pc.longs()) {
                        out.add(v);
                    }
                } else {
                    out.add(UNKNOWN); // a computed size (batch, sequence): one element, from an Unsqueeze
                }
            }
            return out.stream().mapToLong(Long::longValue).toArray();
        }

        private OnnxTensor constant(String t) {
            OnnxTensor init = model.initializer(t).orElse(null);
            if (init != null) {
                return init;
            }
            Node n = producer.get(t);
            if (n != null && n.opType().equals("Constant")
                    && n.attribute("value").orElse(null) instanceof Attribute.TensorValue v) {
                return v.value();
            }
            return null;
        }

        private Float scalar(String t) {
            OnnxTensor c = constant(t);
            return c != null && c.isFloat() && c.elementCount() == 1 ? c.floats()[0] : null;
        }

        private boolean isScalar(String t, float value) {
            return Objects.equals(scalar(t), value);
        }

        /** The rank-2 FLOAT initializer a MatMul multiplies by, or null. */
        private OnnxTensor weight(Node matMul) {
            OnnxTensor w = model.initializer(matMul.input(1)).orElse(null);
            return w != null && w.rank() == 2 ? w : null;
        }

        /** The rank-2 initializer a Gather looks rows up in, or null. */
        private OnnxTensor table(Node gather) {
            OnnxTensor w = model.initializer(gather.input(0)).orElse(null);
            boolean rows = gather.attribute("axis").map(a -> a instanceof Attribute.IntValue v && v.value() == 0).orElse(true);
            return w != null && w.rank() == 2 && rows ? w : null;
        }

        private List<Use> uses(String t) {
            return uses.getOrDefault(t, List.of());
        }

        /** The one node of type {@code op} reading {@code t}, or null. */
        private Node only(String t, String op) {
            List<Node> found = uses(t).stream().map(Use::node).filter(n -> n.opType().equals(op)).distinct().toList();
            return found.size() == 1 ? found.getFirst() : null;
        }

        /** The input of binary {@code n} that is not {@code t}. */
        private static String other(Node n, String t) {
            return n.input(0).equals(t) ? n.input(1) : n.input(0);
        }

        private void put(String name, OnnxTensor t, boolean transpose) {
            if (mapped.containsValue(t)) {
                throw fail("initializer \"" + t.name() + "\" serves as " + name + " and as another weight");
            }
            mapped.put(name, t);
            if (transpose) {
                transposed.add(name);
            }
        }

        private void putNorm(String prefix, Norm n) {
            put(prefix + ".weight", n.weight, false);
            put(prefix + ".bias", n.bias, false);
            epsilons.add(n.eps);
        }

        private TandemException fail(String why) {
            return new TandemException(src + " is not a BERT encoder Tandem can read: " + why + ".");
        }
    }
}
