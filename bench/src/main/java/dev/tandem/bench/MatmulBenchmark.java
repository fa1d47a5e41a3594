package dev.tandem.bench;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cpu.CpuBackend;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

import java.lang.foreign.Arena;
import java.util.concurrent.TimeUnit;

/**
 * {@link CpuBackend#matmul}: {@code out[n, m] = x[n, k] · w[m, k]ᵀ}, one op = 2·n·k·m FLOP. n = 1 is a
 * decode step (bound by streaming the weights), n = 64 a prefill chunk; 1024×1024 is an attention
 * projection of a small model, 2048→5632 the MLP up-projection of a 1B Llama. Bytes per op are the weight's own
 * (1.0625 per value for Q8_0, 0.5625 for Q4_0 and Q4_K, 0.82 for Q6_K).
 * Not final: JMH subclasses benchmark states.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 2, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
public class MatmulBenchmark {

    /** Rows of x: 1 (decode) or 64 (prefill). */
    @Param({"1", "64"})
    public int n;

    /** Weight shape as k x m (w is [m, k]). */
    @Param({"1024x1024", "2048x5632"})
    public String shape;

    /** Weight type: f32, bf16, or a llama.cpp block format (decoded in registers; the jmh.sh profiles pin F32,BF16). */
    @Param({"F32", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    public DType weights;

    /** Backend threads: 1, or "all" available processors. */
    @Param({"1", "all"})
    public String threads;

    private CpuBackend backend;
    private Arena arena;
    private Tensor x;
    private Tensor w;
    private Tensor out;
    private double flopPerOp;
    private double bytesPerOp;

    @Setup(Level.Trial)
    public void setUp() {
        String[] km = shape.split("x");
        int k = Integer.parseInt(km[0]);
        int m = Integer.parseInt(km[1]);
        backend = new CpuBackend(Fixtures.threads(threads));
        // Shared, not confined: the backend's worker threads read and write these segments.
        arena = Arena.ofShared();
        x = Tensor.allocate(arena, DType.F32, n, k);
        w = Tensor.allocate(arena, weights, m, k);
        out = Tensor.allocate(arena, DType.F32, n, m);
        Fixtures.fillUniform(x, 1);
        if (weights.isQuantized()) {
            Fixtures.fillQuantized(w, 2);
        } else {
            Fixtures.fillUniform(w, 2);
        }
        flopPerOp = 2.0 * n * k * m;
        bytesPerOp = (double) w.byteSize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        arena.close();
    }

    @Benchmark
    public void matmul(Blackhole bh, WorkCounters work) {
        backend.matmul(x, w, out);
        bh.consume(out.getFloat(out.numel() - 1));
        work.add(flopPerOp, bytesPerOp);
    }
}
