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
 * {@link CpuBackend#layerNorm} of {@code rows} activations of width {@code hidden} with f32 weight and bias, into a
 * separate output: BERT's norm, twice per layer. The kernel reads a row three times (the mean, the centred squares,
 * the output), the last two from cache; the {@code :gbyte} counter counts x and out once per row and the weight and
 * bias once: 4·(2·rows·hidden + 2·hidden) bytes per call. Rows go to tasks of at least 16K elements, so one row
 * runs on one thread whatever {@code threads} says. Not final: JMH subclasses benchmark states.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 2, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
public class LayerNormBenchmark {

    /** Activation rows: 1 (a query embedded alone) or 128 (a passage). */
    @Param({"1", "128"})
    public int rows;

    /** Hidden size: 384 (MiniLM, bge-small), 768 (BERT-base). Not "dim", which jmh.sh's quick profile pins. */
    @Param({"384", "768"})
    public int hidden;

    /** Backend threads: 1, or "all" available processors. */
    @Param({"1", "all"})
    public String threads;

    private CpuBackend backend;
    private Arena arena;
    private Tensor x;
    private Tensor weight;
    private Tensor bias;
    private Tensor out;
    private double bytesPerOp;

    @Setup(Level.Trial)
    public void setUp() {
        backend = new CpuBackend(Fixtures.threads(threads));
        arena = Arena.ofShared();
        x = Tensor.allocate(arena, DType.F32, rows, hidden);
        weight = Tensor.allocate(arena, DType.F32, hidden);
        bias = Tensor.allocate(arena, DType.F32, hidden);
        out = Tensor.allocate(arena, DType.F32, rows, hidden);
        Fixtures.fillUniform(x, 1);
        Fixtures.fillUniform(weight, 2);
        Fixtures.fillUniform(bias, 3);
        bytesPerOp = 4.0 * (2.0 * rows * hidden + 2.0 * hidden);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        arena.close();
    }

    @Benchmark
    public void layerNorm(Blackhole bh, ByteCounter bytes) {
        backend.layerNorm(x, weight, bias, 1e-12f, out);
        bh.consume(out.getFloat(out.numel() - 1));
        bytes.add(bytesPerOp);
    }
}
