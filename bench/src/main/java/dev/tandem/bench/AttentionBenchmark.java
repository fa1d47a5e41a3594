package dev.tandem.bench;

import dev.tandem.runtime.AttentionRows;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvSequence;
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
 * {@link CpuBackend#attention} for one decode row over a paged KV cache holding {@code context}
 * tokens: 32 query heads sharing 8 KV heads of dimension 64, block size 16. One op = 4·heads·context·
 * headDim FLOP (scores and weighted sum) and reads every cached K and V value once.
 * Not final: JMH subclasses benchmark states.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 2, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
public class AttentionBenchmark {
    private static final int HEADS = 32;
    private static final int KV_HEADS = 8;
    private static final int HEAD_DIM = 64;
    private static final int BLOCK_SIZE = 16;

    /** Cached tokens the decode row attends to. */
    @Param({"128", "1024"})
    public int context;

    /** Backend threads: 1, or "all" available processors. */
    @Param({"1", "all"})
    public String threads;

    private CpuBackend backend;
    private Arena arena;
    private KvCache cache;
    private Tensor q;
    private Tensor out;
    private AttentionRows rows;
    private double flopPerOp;
    private double bytesPerOp;

    @Setup(Level.Trial)
    public void setUp() {
        backend = new CpuBackend(Fixtures.threads(threads));
        // Shared, not confined: the backend's worker threads read q and write out.
        arena = Arena.ofShared();
        cache = KvCache.forTokens(1, KV_HEADS, HEAD_DIM, BLOCK_SIZE, context);
        KvSequence sequence = cache.newSequence();
        int[] slots = sequence.append(context);
        Tensor k = Tensor.allocate(arena, DType.F32, context, (long) KV_HEADS * HEAD_DIM);
        Tensor v = Tensor.allocate(arena, DType.F32, context, (long) KV_HEADS * HEAD_DIM);
        Fixtures.fillUniform(k, 1);
        Fixtures.fillUniform(v, 2);
        backend.writeKv(cache, 0, k, v, slots);
        q = Tensor.allocate(arena, DType.F32, 1, (long) HEADS * HEAD_DIM);
        out = Tensor.allocate(arena, DType.F32, 1, (long) HEADS * HEAD_DIM);
        Fixtures.fillUniform(q, 3);
        rows = new AttentionRows(new int[][] {sequence.blockTable()}, new int[] {context});
        flopPerOp = 4.0 * HEADS * context * HEAD_DIM;
        bytesPerOp = 2.0 * context * KV_HEADS * HEAD_DIM * Float.BYTES;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        cache.close();
        arena.close();
    }

    @Benchmark
    public void attention(Blackhole bh, WorkCounters work) {
        backend.attention(q, cache, 0, rows, HEADS, (float) (1 / Math.sqrt(HEAD_DIM)), out);
        bh.consume(out.getFloat(out.numel() - 1));
        work.add(flopPerOp, bytesPerOp);
    }
}
