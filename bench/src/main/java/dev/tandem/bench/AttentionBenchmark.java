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
 * {@link CpuBackend#attention} over a paged KV cache holding {@code context} tokens in f32 or bf16:
 * 32 query heads sharing 8 KV heads of dimension 64 (TinyLlama-1.1B's attention), block size 16.
 * {@code queries} = 1 is a decode step (one row seeing the whole context); 64 is the last prefill
 * chunk of the context, causal (row i sees {@code context − 64 + i + 1} positions).
 * One op = Σ over rows of 4·heads·visible·headDim FLOP (scores and weighted sum); the {@code :gbyte}
 * counter counts every cached K and V value once (the rows and query heads of a group re-read them
 * from cache).
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

    /** Cached tokens, the last query row included. */
    @Param({"128", "1024", "4096"})
    public int context;

    /** Query rows per call: 1 (decode) or 64 (a causal prefill chunk at the end of the context). */
    @Param({"1", "64"})
    public int queries;

    /** The KV cache's dtype: F32, or BF16 (half the bytes, widened on read). */
    @Param({"F32", "BF16"})
    public DType kv;

    /** Backend threads: 1, or "all" available processors. */
    @Param({"1", "all"})
    public String threads;

    private CpuBackend backend;
    private Arena arena;
    private KvCache cache;
    private Tensor q;
    private Tensor out;
    private AttentionRows rows;
    private float scale;
    private double flopPerOp;
    private double bytesPerOp;

    @Setup(Level.Trial)
    public void setUp() {
        if (queries > context) {
            throw new IllegalArgumentException("queries " + queries + " > context " + context);
        }
        backend = new CpuBackend(Fixtures.threads(threads));
        // Shared, not confined: the backend's worker threads read q and write out.
        arena = Arena.ofShared();
        cache = KvCache.forTokens(1, KV_HEADS, HEAD_DIM, BLOCK_SIZE, context, kv);
        KvSequence sequence = cache.newSequence();
        int[] slots = sequence.append(context);
        Tensor k = Tensor.allocate(arena, DType.F32, context, (long) KV_HEADS * HEAD_DIM);
        Tensor v = Tensor.allocate(arena, DType.F32, context, (long) KV_HEADS * HEAD_DIM);
        Fixtures.fillUniform(k, 1);
        Fixtures.fillUniform(v, 2);
        backend.writeKv(cache.storage(), 0, k, v, slots);
        q = Tensor.allocate(arena, DType.F32, queries, (long) HEADS * HEAD_DIM);
        out = Tensor.allocate(arena, DType.F32, queries, (long) HEADS * HEAD_DIM);
        Fixtures.fillUniform(q, 3);
        int[] table = sequence.blockTable();
        int[][] tables = new int[queries][];
        int[] visible = new int[queries];
        long positions = 0;
        for (int r = 0; r < queries; r++) {
            tables[r] = table;
            visible[r] = context - queries + r + 1;
            positions += visible[r];
        }
        rows = new AttentionRows(tables, visible);
        scale = (float) (1 / Math.sqrt(HEAD_DIM));
        flopPerOp = 4.0 * HEADS * HEAD_DIM * positions;
        bytesPerOp = 2.0 * context * KV_HEADS * HEAD_DIM * kv.byteSize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
        cache.close();
        arena.close();
    }

    @Benchmark
    public void attention(Blackhole bh, WorkCounters work) {
        backend.attention(q, cache.storage(), 0, rows, HEADS, scale, out);
        bh.consume(out.getFloat(out.numel() - 1));
        work.add(flopPerOp, bytesPerOp);
    }
}
