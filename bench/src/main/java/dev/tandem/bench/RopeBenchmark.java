package dev.tandem.bench;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.RopeLayout;
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
 * {@link CpuBackend#rope} in place on the queries of {@code rows} tokens: 32 heads of dimension 64
 * (TinyLlama-1.1B), θ = 10000, Hugging Face's rotate-half layout. A decode row sits at position 1023,
 * prefill rows at 0…63. Each call computes cos and sin of headDim/2 angles per row, then rotates every
 * head; rotations keep the values bounded, so rotating the same tensor again and again is
 * representative. The {@code :gbyte} counter counts x read and written once: 8·rows·heads·headDim
 * bytes per call. Not final: JMH subclasses benchmark states.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 2, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
public class RopeBenchmark {
    private static final int HEADS = 32;
    private static final int HEAD_DIM = 64;
    private static final double THETA = 10000;

    /** Token rows: 1 (decode) or 64 (prefill chunk). */
    @Param({"1", "64"})
    public int rows;

    /** Backend threads: 1, or "all" available processors. */
    @Param({"1", "all"})
    public String threads;

    private CpuBackend backend;
    private Arena arena;
    private Tensor x;
    private int[] positions;
    private float[] invFreq;
    private double bytesPerOp;

    @Setup(Level.Trial)
    public void setUp() {
        backend = new CpuBackend(Fixtures.threads(threads));
        arena = Arena.ofShared();
        x = Tensor.allocate(arena, DType.F32, rows, (long) HEADS * HEAD_DIM);
        Fixtures.fillUniform(x, 1);
        positions = new int[rows];
        for (int r = 0; r < rows; r++) {
            positions[r] = rows == 1 ? 1023 : r;
        }
        invFreq = new float[HEAD_DIM / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) (1 / Math.pow(THETA, 2.0 * i / HEAD_DIM));
        }
        bytesPerOp = 8.0 * rows * HEADS * HEAD_DIM;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        arena.close();
    }

    @Benchmark
    public void rope(Blackhole bh, ByteCounter bytes) {
        backend.rope(x, HEADS, HEAD_DIM, positions, invFreq, RopeLayout.ROTATE_HALF);
        bh.consume(x.getFloat(x.numel() - 1));
        bytes.add(bytesPerOp);
    }
}
