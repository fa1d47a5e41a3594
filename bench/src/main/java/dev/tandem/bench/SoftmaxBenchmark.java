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
 * {@link CpuBackend#softmax}, row-wise and in place, over {@code rows} rows of {@code width}: 1024 is a
 * row of attention scores, 32000 a row of logits (Llama 2 vocabulary). Single-threaded in the backend,
 * so there is no threads parameter. After the first call the rows hold probabilities, and softmax of
 * those is as costly as of the original values (one max, one exp per element, one scale), so the tensor
 * is not restored between calls. The {@code :gbyte} counter counts the rows read and written once:
 * 8·rows·width bytes per call. Not final: JMH subclasses benchmark states.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 2, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
public class SoftmaxBenchmark {

    /** Rows: 1 (decode) or 64 (prefill chunk). */
    @Param({"1", "64"})
    public int rows;

    /** Row width: 1024 (attention scores) or 32000 (logits). */
    @Param({"1024", "32000"})
    public int width;

    private CpuBackend backend;
    private Arena arena;
    private Tensor x;
    private double bytesPerOp;

    @Setup(Level.Trial)
    public void setUp() {
        backend = new CpuBackend(1);
        arena = Arena.ofShared();
        x = Tensor.allocate(arena, DType.F32, rows, width);
        Fixtures.fillUniform(x, 1);
        bytesPerOp = 8.0 * rows * width;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        arena.close();
    }

    @Benchmark
    public void softmax(Blackhole bh, ByteCounter bytes) {
        backend.softmax(x);
        bh.consume(x.getFloat(x.numel() - 1));
        bytes.add(bytesPerOp);
    }
}
