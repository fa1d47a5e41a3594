package dev.tandem.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.bert.Encoders;
import dev.tandem.transformer.onnx.BertOnnxWeights;
import dev.tandem.transformer.tokenizer.Tokenizer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.IOException;
import java.io.InputStream;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * Sentence embeddings with the embedded all-MiniLM-L6-v2, Tandem against ONNX Runtime on the same ONNX bytes (issue 17):
 * {@code latency} embeds one sentence of 20 words alone (ms per sentence), {@code throughput} 32 different sentences of
 * 15–25 words in one call (sentences per second). Each op is the whole job from text to unit vector, so both sides
 * compute the same thing: Tandem's WordPiece tokenizer from the model's {@code tokenizer.json} (the one
 * {@link Encoders#miniLm} loads; ONNX Runtime has no tokenizer, so its side uses the same Tandem tokenizer), the network,
 * then sentence-transformers' mean pooling and L2 normalisation in Java.
 * <ul>
 *   <li>{@code tandem}: {@link Embedder#latency} for one sentence, {@link BertEncoder#embed(List, BertEncoder.Pooling,
 *       boolean, boolean)} of the 32 for the batch; the encoder packs the sequences of a pass without padding.</li>
 *   <li>{@code onnxruntime}: one {@code session.run} of {@code input_ids}, {@code attention_mask} and
 *       {@code token_type_ids}; the batch padded to its longest sentence with the attention mask, as langchain4j and
 *       sentence-transformers feed it, and the mean taken over the mask. {@code threads} intra-op threads, one inter-op
 *       thread, ONNX Runtime's default graph optimisations (all) and spinning.</li>
 * </ul>
 * Setup runs both on every sentence and fails unless each pair of vectors has a cosine of at least 0.9999, then closes
 * the side not being timed (so its threads cannot spin beside the other's). Not final: JMH subclasses benchmark states.
 */
@State(Scope.Benchmark)
@Fork(value = 2, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class EmbeddingBenchmark {

    /** What embeds: Tandem's encoder or ONNX Runtime's session. */
    @Param({"tandem", "onnxruntime"})
    public String impl;

    /** Threads of Tandem's CPU backend, or ONNX Runtime's intra-op threads. */
    @Param({"2"})
    public int threads;

    /** The sentence embedded alone: 20 words, 25 tokens with [CLS] and [SEP]. */
    static final String QUERY = "How do I reset my router's admin password if I no longer have access to the email "
            + "address I registered with?";

    /** The batch: 32 different sentences of 15–25 words, the kind of passages a retrieval index holds. */
    static final List<String> BATCH = List.of(
            "The museum's new wing houses a collection of Byzantine mosaics that were recovered from a flooded church in 1962.",
            "Regular exercise lowers blood pressure, improves sleep quality and reduces the risk of type 2 diabetes in adults.",
            "To install the package, run the installer as an administrator and restart the computer when it asks you to.",
            "The central bank raised interest rates by a quarter of a point, citing persistent inflation in services and housing.",
            "Our team shipped the new search feature two weeks early, and customers have already reported faster results.",
            "Honeybees communicate the direction and distance of flowers to their hive mates through a so-called waggle dance.",
            "If the dishwasher does not drain, check the filter at the bottom for food scraps and clean it under running water.",
            "The novel follows three generations of a fishing family on the Norwegian coast through war, famine and emigration.",
            "Quantum computers use qubits, which can represent zero and one at the same time, to solve certain problems faster.",
            "The city council approved a plan to convert two downtown parking garages into affordable apartments by 2028.",
            "She trained for eighteen months before running her first marathon, finishing in just under four hours.",
            "Photosynthesis converts light energy into chemical energy stored in glucose, releasing oxygen as a by-product.",
            "Please submit your expense reports by Friday so that the finance team can process reimbursements this month.",
            "The striker scored twice in the second half, sending the home crowd into celebration as the team reached the final.",
            "A good sourdough starter needs flour, water, warmth and patience, and it should be fed at least once a day.",
            "The software update fixes a memory leak that caused the application to slow down after several hours of use.",
            "Volcanic eruptions can cool the global climate for several years by releasing sulfur dioxide into the stratosphere.",
            "Tickets for the summer music festival sold out within minutes, and resale prices have already tripled online.",
            "The hotel offers free breakfast, a rooftop swimming pool and a shuttle to the airport every thirty minutes.",
            "Researchers found that children who read for pleasure every day score higher on vocabulary tests at age sixteen.",
            "The bridge was closed for repairs after engineers discovered cracks in two of its steel support beams.",
            "Remote work has changed how companies think about office space, hiring across regions and team communication.",
            "The recipe calls for two cups of flour, one teaspoon of baking soda, a pinch of salt and three ripe bananas.",
            "Astronomers detected water vapour in the atmosphere of an exoplanet orbiting a red dwarf about 120 light years away.",
            "My flight was delayed by three hours because of a storm, so I missed the connection to Lisbon.",
            "The company reported record quarterly revenue, driven mainly by strong demand for its cloud storage services.",
            "Learning a second language in childhood appears to improve attention control and the ability to switch between tasks.",
            "The old lighthouse on the northern cliffs has been turned into a small museum about the history of local shipwrecks.",
            "Always back up your files before upgrading the operating system, because a failed upgrade can corrupt the disk.",
            "The documentary explores how coral reefs recover after bleaching events and what scientists are doing to help them.",
            "Farmers in the valley switched to drip irrigation, cutting their water use by almost forty percent in three years.",
            "The committee will review all applications in March and notify successful candidates by the end of April.");

    private static final double MIN_COSINE = 0.9999;

    private BertEncoder encoder;
    private Embedder embedder;
    private Tokenizer tokenizer;
    private OrtEnvironment env;
    private OrtSession session;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        if (!impl.equals("tandem") && !impl.equals("onnxruntime")) {
            throw new IllegalArgumentException("impl is tandem or onnxruntime, not " + impl);
        }
        encoder = Encoders.miniLm(null, threads);
        embedder = Embedder.latency(encoder, BertEncoder.Pooling.MEAN, true, false);
        tokenizer = encoder.tokenizer();
        env = OrtEnvironment.getEnvironment();
        session = ortSession(env, threads, null);
        checkAgreement();
        if (impl.equals("tandem")) {
            session.close();
            session = null;
        } else {
            encoder.close();
            encoder = null;
            embedder = null;
        }
    }

    /** Both sides on the query alone and on the batch: every pair of vectors at a cosine of at least 0.9999. */
    private void checkAgreement() throws OrtException {
        List<float[]> tandem = new ArrayList<>();
        tandem.add(embedder.embed(QUERY));
        tandem.addAll(List.of(encoder.embed(BATCH, BertEncoder.Pooling.MEAN, true, false)));
        List<float[]> ort = new ArrayList<>();
        ort.add(ortEmbed(List.of(QUERY))[0]);
        ort.addAll(List.of(ortEmbed(BATCH)));
        double worst = 1;
        for (int i = 0; i < tandem.size(); i++) {
            double dot = 0;
            for (int j = 0; j < tandem.get(i).length; j++) {
                dot += (double) tandem.get(i)[j] * ort.get(i)[j];
            }
            if (!(dot >= MIN_COSINE)) {
                throw new IllegalStateException("Tandem and ONNX Runtime disagree on " + (i == 0 ? "the query" : "batch sentence "
                        + (i - 1)) + ": cosine " + dot + " < " + MIN_COSINE);
            }
            worst = Math.min(worst, dot);
        }
        System.out.printf("%nTandem vs ONNX Runtime on %d sentences: smallest cosine %.9f%n", tandem.size(), worst);
    }

    private float[][] ortEmbed(List<String> texts) throws OrtException {
        return ortEmbed(env, session, tokenizer, texts);
    }

    /**
     * Mean-pooled unit vectors of {@code texts} from one ONNX Runtime run of the batch padded to its longest sentence,
     * tokenized by {@code tokenizer}.
     */
    static float[][] ortEmbed(OrtEnvironment env, OrtSession session, Tokenizer tokenizer, List<String> texts) throws OrtException {
        int n = texts.size();
        int[][] ids = new int[n][];
        int len = 0;
        for (int i = 0; i < n; i++) {
            ids[i] = tokenizer.withSpecialTokens(tokenizer.encode(texts.get(i)));
            len = Math.max(len, ids[i].length);
        }
        long[] input = new long[n * len], mask = new long[n * len], types = new long[n * len];
        for (int i = 0; i < n; i++) {
            for (int t = 0; t < ids[i].length; t++) {
                input[i * len + t] = ids[i][t];
                mask[i * len + t] = 1; // padding keeps id 0 ([PAD]) and mask 0
            }
        }
        long[] shape = {n, len};
        try (OnnxTensor a = OnnxTensor.createTensor(env, LongBuffer.wrap(input), shape);
             OnnxTensor b = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), shape);
             OnnxTensor c = OnnxTensor.createTensor(env, LongBuffer.wrap(types), shape);
             OrtSession.Result r = session.run(Map.of("input_ids", a, "attention_mask", b, "token_type_ids", c),
                     Set.of("last_hidden_state"))) {
            FloatBuffer hidden = ((OnnxTensor) r.get(0)).getFloatBuffer();
            int d = hidden.capacity() / (n * len);
            float[][] out = new float[n][d];
            double[] sum = new double[d];
            for (int i = 0; i < n; i++) {
                java.util.Arrays.fill(sum, 0);
                for (int t = 0; t < ids[i].length; t++) { // the mask's ones are the sentence's own tokens
                    int base = (i * len + t) * d;
                    for (int j = 0; j < d; j++) {
                        sum[j] += hidden.get(base + j);
                    }
                }
                double sq = 0;
                for (int j = 0; j < d; j++) {
                    sum[j] /= ids[i].length;
                    sq += sum[j] * sum[j];
                }
                double norm = Math.max(Math.sqrt(sq), 1e-12);
                for (int j = 0; j < d; j++) {
                    out[i][j] = (float) (sum[j] / norm);
                }
            }
            return out;
        }
    }

    /** The embedded model's ONNX bytes, as both sides read them. */
    static byte[] modelBytes() throws IOException {
        try (InputStream in = EmbeddingBenchmark.class.getClassLoader().getResourceAsStream(BertOnnxWeights.MINILM_MODEL)) {
            if (in == null) {
                throw new IOException("the embedded model " + BertOnnxWeights.MINILM_MODEL + " is not on the class path");
            }
            return in.readAllBytes();
        }
    }

    /** An ONNX Runtime session as the benchmark opens it; {@code profile}, when not null, turns its profiler on. */
    static OrtSession ortSession(OrtEnvironment env, int threads, String profile) throws IOException, OrtException {
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(threads);
            options.setInterOpNumThreads(1);
            if (profile != null) {
                options.enableProfiling(profile);
            }
            return env.createSession(modelBytes(), options);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws OrtException {
        if (session != null) {
            session.close();
        }
        if (encoder != null) {
            encoder.close();
        }
    }

    /** One sentence embedded alone: milliseconds per sentence. */
    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    public float[] latency() throws OrtException {
        return impl.equals("tandem") ? embedder.embed(QUERY) : ortEmbed(List.of(QUERY))[0];
    }

    /** 32 different sentences in one call: sentences per second. */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    @OperationsPerInvocation(32)
    public float[][] throughput() throws OrtException {
        return impl.equals("tandem") ? encoder.embed(BATCH, BertEncoder.Pooling.MEAN, true, false) : ortEmbed(BATCH);
    }
}
