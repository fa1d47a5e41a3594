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
 * {@link CpuBackend#gelu} (the exact, erf-based GELU of BERT's feed-forward layer) of {@code rows} × {@code intermediate}
 * activations, into a separate output. Every element evaluates both of the float erf's polynomials (22 fused
 * multiply-adds) whatever its value, so the inputs' range does not matter. The {@code :gbyte} counter counts x and out
 * once: 8·rows·intermediate bytes per call; the {@code ops/s} line times rows·intermediate is elements per second.
 * The backend cuts the elements into tasks of 16K, so one row runs on one thread. Not final: JMH subclasses benchmark
 * states.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 2, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
public class GeluBenchmark {

    /** Activation rows: 1 (a query embedded alone) or 128 (a passage). */
    @Param({"1", "128"})
    public int rows;

    /** Feed-forward width: 1536 (MiniLM, bge-small), 3072 (BERT-base). Not "width", which jmh.sh's quick profile pins. */
    @Param({"1536", "3072"})
    public int intermediate;

    /** Backend threads: 1, or "all" available processors. */
    @Param({"1", "all"})
    public String threads;

    private CpuBackend backend;
    private Arena arena;
    private Tensor x;
    private Tensor out;
    private double bytesPerOp;

    @Setup(Level.Trial)
    public void setUp() {
        backend = new CpuBackend(Fixtures.threads(threads));
        arena = Arena.ofShared();
        x = Tensor.allocate(arena, DType.F32, rows, intermediate);
        out = Tensor.allocate(arena, DType.F32, rows, intermediate);
        Fixtures.fillUniform(x, 1);
        bytesPerOp = 8.0 * rows * intermediate;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        arena.close();
    }

    @Benchmark
    public void gelu(Blackhole bh, ByteCounter bytes) {
        backend.gelu(x, out);
        bh.consume(out.getFloat(out.numel() - 1));
        bytes.add(bytesPerOp);
    }
}
