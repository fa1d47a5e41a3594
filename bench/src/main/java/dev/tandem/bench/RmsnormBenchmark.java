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
 * {@link CpuBackend#rmsnorm} of {@code rows} activations of width {@code dim} with an f32 weight,
 * into a separate output. The {@code :gbyte} counter counts x and out once per row and the weight
 * once: 4·(2·rows·dim + dim) bytes per call. The backend splits rows into tasks of at least 16K
 * elements, so one decode row runs on one thread whatever {@code threads} says.
 * Not final: JMH subclasses benchmark states.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 2, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
public class RmsnormBenchmark {

    /** Activation rows: 1 (decode) or 64 (prefill chunk). */
    @Param({"1", "64"})
    public int rows;

    /** Hidden size: 2048 (TinyLlama-1.1B), 4096 (Llama 7B/8B). */
    @Param({"2048", "4096"})
    public int dim;

    /** Backend threads: 1, or "all" available processors. */
    @Param({"1", "all"})
    public String threads;

    private CpuBackend backend;
    private Arena arena;
    private Tensor x;
    private Tensor weight;
    private Tensor out;
    private double bytesPerOp;

    @Setup(Level.Trial)
    public void setUp() {
        backend = new CpuBackend(Fixtures.threads(threads));
        arena = Arena.ofShared();
        x = Tensor.allocate(arena, DType.F32, rows, dim);
        weight = Tensor.allocate(arena, DType.F32, dim);
        out = Tensor.allocate(arena, DType.F32, rows, dim);
        Fixtures.fillUniform(x, 1);
        Fixtures.fillUniform(weight, 2);
        bytesPerOp = 4.0 * (2.0 * rows * dim + dim);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        arena.close();
    }

    @Benchmark
    public void rmsnorm(Blackhole bh, ByteCounter bytes) {
        backend.rmsnorm(x, weight, 1e-5f, out);
        bh.consume(out.getFloat(out.numel() - 1));
        bytes.add(bytesPerOp);
    }
}
