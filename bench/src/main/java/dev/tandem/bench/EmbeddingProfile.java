package dev.tandem.bench;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.Encoders;
import dev.tandem.transformer.tokenizer.Tokenizer;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Where the time of {@link EmbeddingBenchmark}'s two operations goes, op by op. Tandem: every call to its backend timed
 * through a wrapping {@link Backend} (wall time of the call; matmuls and biases by weight shape), tokenization apart.
 * ONNX Runtime: the kernel time of its graph's nodes by op type, from its own profiler, over the timed runs only. Also
 * the multiply-add peak of the same threads ({@code FmaPeak}), which the matmul rates are measured against.
 * Each case runs for {@link #WARM_UP_NANOS} before its timed runs. A diagnostic, not a benchmark: the shares are the
 * point, and timing each call adds a little to Tandem's totals. Run it on idle CPUs: ONNX Runtime's spinning threads
 * lose half their speed or more beside any other busy process.
 *
 * <pre>java --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp bench/target/benchmarks.jar \
 *     dev.tandem.bench.EmbeddingProfile [threads, 2] [timed runs, 40]</pre>
 */
public final class EmbeddingProfile {
    /** How long each case runs before it is timed: about what EmbeddingBenchmark's warm-up gives the JIT. */
    static final long WARM_UP_NANOS = 5_000_000_000L;

    private EmbeddingProfile() {
    }

    private interface Call {
        void run() throws Exception;
    }

    /** Runs {@code call} for {@link #WARM_UP_NANOS}; returns how many times. */
    private static int warmUp(Call call) throws Exception {
        int n = 0;
        for (long t0 = System.nanoTime(); System.nanoTime() - t0 < WARM_UP_NANOS; n++) {
            call.run();
        }
        return n;
    }

    public static void main(String[] args) throws Exception {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        int runs = args.length > 1 ? Integer.parseInt(args[1]) : 40;
        List<String> query = List.of(EmbeddingBenchmark.QUERY);
        Tokenizer tokenizer;
        try (CpuBackend cpu = new CpuBackend(threads)) {
            System.out.printf("multiply-add peak, %d threads: %.1f GMAC/s%n", threads,
                    Arrays.stream(cpu.measureMultiplyAddPeak(5, 200).perSecond()).max().orElseThrow() / 1e9);
            Map<String, long[]> calls = new TreeMap<>();
            boolean[] on = {false};
            Backend timed = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                    (proxy, method, a) -> {
                        long t0 = System.nanoTime();
                        Object r;
                        try {
                            r = method.invoke(cpu, a);
                        } catch (InvocationTargetException e) {
                            throw e.getCause();
                        }
                        if (on[0]) {
                            String op = method.getName();
                            if (op.equals("matmul") || op.equals("addBias")) {
                                op += " " + Arrays.toString(((Tensor) a[1]).shape());
                            }
                            long[] s = calls.computeIfAbsent(op, k -> new long[2]);
                            s[0] += System.nanoTime() - t0;
                            s[1]++;
                        }
                        return r;
                    });
            try (BertEncoder encoder = Encoders.miniLm(timed, threads)) {
                tokenizer = encoder.tokenizer();
                for (List<String> texts : List.of(query, EmbeddingBenchmark.BATCH)) {
                    int tokens = 0;
                    for (String t : texts) {
                        tokens += encoder.tokenize(t, false).length;
                    }
                    warmUp(() -> encoder.embed(texts, BertEncoder.Pooling.MEAN, true, false));
                    calls.clear();
                    on[0] = true;
                    long t0 = System.nanoTime();
                    for (int i = 0; i < runs; i++) {
                        encoder.embed(texts, BertEncoder.Pooling.MEAN, true, false);
                    }
                    double total = (System.nanoTime() - t0) / 1e6 / runs;
                    on[0] = false;
                    t0 = System.nanoTime();
                    for (int i = 0; i < runs; i++) {
                        for (String t : texts) {
                            encoder.tokenize(t, false);
                        }
                    }
                    double tokenize = (System.nanoTime() - t0) / 1e6 / runs;
                    System.out.printf("%nTandem, %d sentence(s), %d tokens: %.3f ms per call (tokenization %.3f ms)%n",
                            texts.size(), tokens, total, tokenize);
                    calls.forEach((op, s) -> System.out.printf("  %-22s %8.3f ms  %5.1f%%  %3d calls%n", op, s[0] / 1e6 / runs,
                            100 * s[0] / 1e6 / runs / total, s[1] / runs));
                }
            }
        }
        Path dir = Files.createTempDirectory("tandem-ort-profile");
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        Path profile;
        int[] warm = new int[2];
        try (OrtSession session = EmbeddingBenchmark.ortSession(env, threads, dir.resolve("ort").toString())) {
            for (int c = 0; c < 2; c++) {
                List<String> texts = c == 0 ? query : EmbeddingBenchmark.BATCH;
                warm[c] = warmUp(() -> EmbeddingBenchmark.ortEmbed(env, session, tokenizer, texts));
                for (int i = 0; i < runs; i++) { // the profile tells the timed runs from the warm-up by their order
                    EmbeddingBenchmark.ortEmbed(env, session, tokenizer, texts);
                }
            }
            profile = Path.of(session.endProfiling());
        }
        JsonNode events = new ObjectMapper().readTree(profile.toFile());
        List<JsonNode> modelRuns = new ArrayList<>();
        for (JsonNode e : events) {
            if (e.path("cat").asText().equals("Session") && e.path("name").asText().equals("model_run")) {
                modelRuns.add(e);
            }
        }
        for (int c = 0, at = 0; c < 2; at += warm[c] + runs, c++) {
            List<JsonNode> timedRuns = modelRuns.subList(at + warm[c], at + warm[c] + runs);
            long from = timedRuns.getFirst().path("ts").asLong(), to = timedRuns.getLast().path("ts").asLong() + timedRuns.getLast().path("dur").asLong();
            double total = timedRuns.stream().mapToLong(e -> e.path("dur").asLong()).sum() / 1e3 / runs;
            Map<String, Long> byOp = new TreeMap<>();
            for (JsonNode e : events) {
                long ts = e.path("ts").asLong();
                if (e.path("cat").asText().equals("Node") && e.path("name").asText().endsWith("_kernel_time") && ts >= from && ts <= to) {
                    byOp.merge(e.path("args").path("op_name").asText(), e.path("dur").asLong(), Long::sum);
                }
            }
            System.out.printf("%nONNX Runtime, %s: %.3f ms per run (its profiler's model_run)%n", c == 0 ? "1 sentence" : "32 sentences padded",
                    total);
            byOp.forEach((op, us) -> System.out.printf("  %-22s %8.3f ms  %5.1f%%%n", op, us / 1e3 / runs, 100 * us / 1e3 / runs / total));
        }
        Files.delete(profile);
        Files.delete(dir);
    }
}
