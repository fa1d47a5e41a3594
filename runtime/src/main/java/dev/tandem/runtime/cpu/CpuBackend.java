package dev.tandem.runtime.cpu;

import dev.tandem.runtime.AttentionRows;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.HostMemory;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.RopeLayout;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.quant.QuantBlocks;
import dev.tandem.runtime.Placement;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.Roofline;
import dev.tandem.runtime.kv.HostKvStorage;
import dev.tandem.runtime.kv.KvStorage;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The reference backend: Vector API kernels (plain Java where the Vector API is absent) on a
 * persistent thread pool. Work is split over output rows, columns and heads — never inside a
 * reduction — so each value is computed by the same instruction sequence whatever the batch size or
 * thread count (batch and thread invariance).
 */
public final class CpuBackend implements Backend {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    private final CpuThreadPool pool;
    private final Kernels kernels;
    /** Tensors {@link #allocate} gave out, each with the arena that frees it. */
    private final java.util.IdentityHashMap<Tensor, Arena> allocations = new java.util.IdentityHashMap<>();
    private boolean closed;
    private final ThreadLocal<float[]> scratch = ThreadLocal.withInitial(() -> new float[256]);
    /** Per thread: the lanes of a tile's accumulators and the tile's (at most 24) results. */
    private final ThreadLocal<float[][]> tileBuffers;
    /** Per thread: the lane accumulators of every row block of an 8-row panel (grown on demand). */
    private final ThreadLocal<float[]> panelAccumulators = ThreadLocal.withInitial(() -> new float[0]);
    /** Elements of k per chunk when a pass's row blocks share a panel: 8 bf16 weight rows of it take 8 KiB. */
    private static final int K_CHUNK = 512;
    /**
     * Up to this many row blocks (12 rows) walk k in chunks. Past that, a chunk's activation rows (2 KiB
     * each) no longer fit L1 beside the weights and accumulators, and whole-k blocks were faster: on the
     * padded 966M model 48 chunked rows took 1.33× the time of 49 unchunked ones, while 4–8 rows ran
     * 16–30% faster chunked than not.
     */
    private static final int MAX_CHUNKED_BLOCKS = 4;

    /** A backend on all available processors. */
    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    public CpuBackend(int threads) {
        this.pool = new CpuThreadPool(threads);
        this.kernels = Kernels.select();
        this.tileBuffers = ThreadLocal.withInitial(() -> new float[][] {new float[kernels.tileScratch()], new float[24]});
    }

    @Override
    public String name() {
        return "cpu(" + (kernels instanceof VectorKernels ? "vector " : "scalar ") + kernels.lanes() + " lanes, "
                + pool.threads() + " threads)";
    }

    @Override
    public int parallelism() {
        return pool.threads();
    }

    /** True when the kernels run on the Vector API (false: the plain-Java path). */
    public boolean usesVectorApi() {
        return kernels instanceof VectorKernels;
    }

    @Override
    public Placement placement() {
        return Placement.HOST;
    }

    @Override
    public long allocatedBytes() {
        synchronized (allocations) {
            long bytes = 0;
            for (Tensor t : allocations.keySet()) {
                bytes += t.byteSize();
            }
            return bytes;
        }
    }

    @Override
        public Tensor allocate(DType dtype, long... shape) {
        Arena arena = Arena.ofShared();
        Tensor t;
        try {
            t = Tensor.allocate(arena, dtype, shape);
        } catch (OutOfMemoryError e) {
            arena.close();
            throw HostMemory.outOfMemory(Tensor.elementCount(shape) / dtype.blockElements() * dtype.blockBytes(), "activations (" + dtype.lowerName() + " "
                    + java.util.Arrays.toString(shape) + ")");
        }
        synchronized (allocations) {
            if (closed) {
                arena.close();
                throw new IllegalStateException("backend " + name() + " is closed");
            }
            allocations.put(t, arena);
        }
        return t;
    }

    @Override
    public void free(Tensor tensor) {
        Arena arena;
        synchronized (allocations) {
            if (closed) {
                return; // closing freed everything
            }
            arena = allocations.remove(tensor);
        }
        if (arena == null) {
            throw new IllegalArgumentException("tensor " + tensor + " was not allocated by this backend, or is already freed");
        }
        arena.close();
    }

    /** Host weights are computed on where they are: the mapped file or the copy made at load. */
    @Override
    public Tensor loadWeight(Tensor host) {
        if (host.placement() != Placement.HOST) {
            throw new IllegalArgumentException("the CPU backend cannot compute on device tensor " + host);
        }
        return host;
    }

    @Override
    public KvStorage allocateKv(int layers, int kvHeads, int headDim, int blockSize, int numBlocks, DType dtype) {
        return new HostKvStorage(layers, kvHeads, headDim, blockSize, numBlocks, dtype);
    }

    private static HostKvStorage host(KvStorage kv) {
        if (kv instanceof HostKvStorage h) {
            return h;
        }
        throw new IllegalArgumentException("the CPU backend reads KV storage in host memory, not " + kv.getClass().getSimpleName());
    }

    @Override
    public void gatherRows(Tensor src, int[] rows, Tensor dst) {
        long width = src.numel() / Math.max(1, src.dim(0));
        if (dst.dtype() != src.dtype() || dst.numel() / Math.max(1, dst.dim(0)) != width || dst.dim(0) < rows.length) {
            throw new IllegalArgumentException("gatherRows of " + rows.length + " rows of " + src + " into " + dst);
        }
        long rowBytes = src.dtype().bytesFor(width); // whole blocks for a block format, whose rows are
        MemorySegment from = src.segment(), to = dst.segment();
        for (int i = 0; i < rows.length; i++) {
            if (rows[i] < 0 || rows[i] >= src.dim(0)) {
                throw new IndexOutOfBoundsException("row " + rows[i] + " of " + src);
            }
            MemorySegment.copy(from, rows[i] * rowBytes, to, i * rowBytes, rowBytes);
        }
    }

    @Override
    public float[][] readRows(Tensor src, int from, int count) {
        requireF32(src, "readRows");
        int width = (int) (src.numel() / Math.max(1, src.dim(0)));
        MemorySegment seg = src.rows(from, count).segment();
        float[][] out = new float[count][width];
        for (int i = 0; i < count; i++) {
            MemorySegment.copy(seg, F32, 4L * i * width, out[i], 0, width);
        }
        return out;
    }

    @Override
    public void writeRows(float[][] rows, Tensor dst, int from) {
        requireF32(dst, "writeRows");
        int width = (int) (dst.numel() / Math.max(1, dst.dim(0)));
        MemorySegment seg = dst.rows(from, rows.length).segment();
        for (int i = 0; i < rows.length; i++) {
            if (rows[i].length != width) {
                throw new IllegalArgumentException("writeRows: row " + i + " has width " + rows[i].length + ", " + dst + " has " + width);
            }
            MemorySegment.copy(rows[i], 0, seg, F32, 4L * i * width, width);
        }
    }

    private static void requireF32(Tensor t, String op) {
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException(op + " copies f32 rows, not " + t);
        }
    }

    private float[] scratch(int n) {
        float[] s = scratch.get();
        if (s.length < n) {
            s = new float[Math.max(n, s.length * 2)];
            scratch.set(s);
        }
        return s;
    }

    /** Rows of block b when n rows are split into {@code blocks} blocks of sizes differing by at most one. */
    private static int blockRows(int n, int blocks, int b) {
        return n / blocks + (b < n % blocks ? 1 : 0);
    }

    private float[] accumulators(int n) {
        float[] a = panelAccumulators.get();
        if (a.length < n) {
            a = new float[n];
            panelAccumulators.set(a);
        }
        return a;
    }

    private static int rows(Tensor t, int width) {
        return (int) (t.numel() / width);
    }

    @Override
    public void matmul(Tensor x, Tensor w, Tensor out) {
        matmul(x, new Tensor[] {w}, new Tensor[] {out});
    }

    /**
     * Every {@code out[i] = x · ws[i]ᵀ} in one dispatch to the pool (q/k/v, gate/up): one wait for the
     * slowest thread instead of one per product, and the small products fill the gaps of the large.
     */
    @Override
    public void matmul(Tensor x, Tensor[] ws, Tensor[] outs) {
        if (ws.length != outs.length || ws.length == 0) {
            throw new IllegalArgumentException("matmul needs as many outputs as weights, got " + ws.length + " and " + outs.length);
        }
        if (x.dtype() != DType.F32) {
            throw new IllegalArgumentException("matmul needs f32 activations, got " + x);
        }
        int count = ws.length;
        int k = (int) ws[0].dim(-1);
        int n = rows(x, k);
        int[] taskStart = new int[count + 1];
        int[] groupsPerTask = new int[count];
        for (int i = 0; i < count; i++) {
            Tensor w = ws[i], out = outs[i];
            int m = (int) w.dim(0);
            if (out.dtype() != DType.F32 || w.rank() != 2 || w.dim(-1) != k || x.numel() != (long) n * k
                    || out.numel() != (long) n * m) {
                throw new IllegalArgumentException("matmul shapes do not agree: x " + x + ", w " + w + ", out " + out);
            }
            if (k % w.dtype().blockElements() != 0) {
                throw new IllegalArgumentException("matmul reads " + w.dtype().lowerName() + " weight rows of whole blocks of "
                        + w.dtype().blockElements() + " values, and " + w + " has rows of " + k);
            }
            // Tasks own column ranges (groups of 8 weight rows), about eight per thread so that the last
            // tasks even out. Inside a task the weights are the outer loop: each panel of 8 weight rows is
            // read from memory once and used by every row of the pass while it is in cache (3 × 8 tiles,
            // docs/decisions.md).
            int groups = (m + 7) / 8;
            groupsPerTask[i] = Math.max(1, Math.min(16, groups / (pool.threads() * 8)));
            taskStart[i + 1] = taskStart[i] + (groups + groupsPerTask[i] - 1) / groupsPerTask[i];
        }
        MemorySegment xs = x.segment();
        pool.parallelFor(taskStart[count], t -> {
            int i = 0;
            while (t >= taskStart[i + 1]) {
                i++;
            }
            Tensor w = ws[i];
            int m = (int) w.dim(0);
            int c0 = (t - taskStart[i]) * groupsPerTask[i] * 8;
            int c1 = Math.min(m, c0 + groupsPerTask[i] * 8);
            matmulColumns(xs, n, k, w.segment(), w.dtype(), m, outs[i].segment(), c0, c1);
        });
    }

    private void matmulColumns(MemorySegment xs, int n, int k, MemorySegment ws, DType wt, int m,
                               MemorySegment os, int c0, int c1) {
        long xRow = 4L * k;
        MemorySegment w = ws;
        long wRow;
        long wBase;
        DType kt = wt;
        if (wt == DType.F16) {
            // Widen this task's f16 rows once into scratch; f16 → f32 is exact, so results are unchanged.
            // Only mapped f16 weights come here (resident ones were widened at load). The heap segment
            // makes C2's profile of the kernels' loads polymorphic, which slows every caller: a known
            // cost of --mmap with an f16 checkpoint.
            float[] buf = scratch((c1 - c0) * k);
            for (int c = c0; c < c1; c++) {
                for (int i = 0; i < k; i++) {
                    buf[(c - c0) * k + i] = Float.float16ToFloat(ws.get(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * ((long) c * k + i)));
                }
            }
            w = MemorySegment.ofArray(buf);
            wRow = 4L * k;
            wBase = -(long) c0 * wRow;
            kt = DType.F32;
        } else {
            // f32 and bf16 are widened in registers; the block formats are decoded there, block by block, from
            // the weight's own bytes (QuantTiles; docs/decisions.md "Quantized weights are decoded in registers").
            wRow = wt.bytesFor(k);
            wBase = 0;
        }
        float[][] buffers = tileBuffers.get();
        float[] lanes = buffers[0], tile = buffers[1];
        int c = c0;
        // Panels of 8 weight rows; the rows of the pass in blocks of at most 3 (3 × 8 tiles). With several
        // blocks, k is walked in chunks and every block runs over a chunk of the panel while it is in L1;
        // the hardware prefetcher streams the next chunk meanwhile. Accumulators carry over between
        // chunks, so the order of every sum is the canonical one (Kernels.accumulateTile8).
        int lanesPerTile = 24 * kernels.lanes();
        int kFull = k - k % kernels.lanes();
        // Blocks as even as they can be (4 rows: 2 + 2, not 3 + 1): a 1-row tile converts as many weight
        // vectors as a 3-row one for a third of the multiply-adds.
        int blocks = (n + 2) / 3;
        boolean chunked = blocks > 1 && blocks <= MAX_CHUNKED_BLOCKS;
        float[] acc = accumulators(chunked ? blocks * lanesPerTile : lanesPerTile);
        for (; c + 8 <= c1; c += 8) {
            long wOff = wBase + c * wRow;
            if (chunked) {
                java.util.Arrays.fill(acc, 0, blocks * lanesPerTile, 0f);
                for (int k0 = 0; k0 < kFull; k0 += K_CHUNK) {
                    int k1 = Math.min(kFull, k0 + K_CHUNK);
                    for (int b = 0, r = 0; b < blocks; r += blockRows(n, blocks, b), b++) {
                        kernels.accumulateTile8(blockRows(n, blocks, b), xs, r * xRow, xRow, w, wOff, wRow, kt, k0, k1,
                                acc, b * lanesPerTile);
                    }
                }
                for (int b = 0, r = 0; b < blocks; r += blockRows(n, blocks, b), b++) {
                    int rows = blockRows(n, blocks, b);
                    kernels.finishTile8(rows, xs, r * xRow, xRow, w, wOff, wRow, kt, k, acc, b * lanesPerTile, tile);
                    for (int i = 0; i < rows; i++) {
                        MemorySegment.copy(tile, 8 * i, os, F32, 4L * ((long) (r + i) * m + c), 8);
                    }
                }
                continue;
            }
            for (int b = 0, r = 0; b < blocks; r += blockRows(n, blocks, b), b++) {
                int rows = blockRows(n, blocks, b);
                java.util.Arrays.fill(acc, 0, lanesPerTile, 0f);
                kernels.accumulateTile8(rows, xs, r * xRow, xRow, w, wOff, wRow, kt, 0, kFull, acc, 0);
                kernels.finishTile8(rows, xs, r * xRow, xRow, w, wOff, wRow, kt, k, acc, 0, tile);
                for (int i = 0; i < rows; i++) {
                    MemorySegment.copy(tile, 8 * i, os, F32, 4L * ((long) (r + i) * m + c), 8);
                }
            }
        }
        for (; c + 4 <= c1; c += 4) {
            long wOff = wBase + c * wRow;
            for (int r = 0; r < n; r += 4) {
                int rows = Math.min(4, n - r);
                kernels.dotTile(rows, xs, r * xRow, xRow, w, wOff, wRow, kt, k, lanes, tile);
                for (int i = 0; i < rows; i++) {
                    MemorySegment.copy(tile, 4 * i, os, F32, 4L * ((long) (r + i) * m + c), 4);
                }
            }
        }
        for (; c < c1; c++) {
            for (int r = 0; r < n; r++) {
                os.set(F32, 4L * ((long) r * m + c), kernels.dot(xs, r * xRow, w, wBase + c * wRow, kt, k));
            }
        }
    }

    @Override
    public void addBias(Tensor x, Tensor bias) {
        int m = (int) bias.numel();
        int n = rows(x, m);
        MemorySegment xs = x.segment();
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < m; c++) {
                long off = 4L * ((long) r * m + c);
                xs.set(F32, off, xs.get(F32, off) + bias.getFloat(c));
            }
        }
    }

    @Override
    public void rmsnorm(Tensor x, Tensor weight, float eps, Tensor out) {
        int d = (int) weight.numel();
        int n = rows(x, d);
        MemorySegment xs = x.segment(), os = out.segment();
        pool.parallelFor(tasksFor(n, d), t -> {
            int per = perTask(n, d);
            for (int r = t * per; r < Math.min(n, (t + 1) * per); r++) {
                long off = 4L * r * d;
                float ss = kernels.dot(xs, off, xs, off, DType.F32, d);
                // Hugging Face order: x · rsqrt(mean(x²) + eps), then · weight, all in float32.
                float inv = (float) (1.0 / Math.sqrt(ss / d + eps));
                for (int i = 0; i < d; i++) {
                    os.set(F32, off + 4L * i, weight.getFloat(i) * (xs.get(F32, off + 4L * i) * inv));
                }
            }
        });
    }

    @Override
    public void layerNorm(Tensor x, Tensor weight, Tensor bias, float eps, Tensor out) {
        int d = (int) weight.numel();
        if (bias.numel() != d || x.dim(-1) != d || out.numel() != x.numel() || x.dtype() != DType.F32 || out.dtype() != DType.F32) {
            throw new IllegalArgumentException("layerNorm: rows of " + x.dim(-1) + " with a weight of " + d + " and a bias of "
                    + bias.numel() + " into " + out);
        }
        int n = rows(x, d);
        MemorySegment w = f32(weight), b = f32(bias);
        MemorySegment xs = x.segment(), os = out.segment();
        pool.parallelFor(tasksFor(n, d), t -> {
            int per = perTask(n, d);
            for (int r = t * per; r < Math.min(n, (t + 1) * per); r++) {
                kernels.layerNorm(xs, 4L * r * d, w, b, eps, os, 4L * r * d, d);
            }
        });
    }

    /**
     * {@code t}'s values as f32 in host memory: its own segment when it is f32 (an encoder's norms are, so a call
     * allocates and copies nothing: widening a 384-wide weight and bias element by element on every call made a one-row
     * layerNorm 4–8× slower), else a widened copy, in native memory so that the kernels' loads see one kind of segment.
     */
    private static MemorySegment f32(Tensor t) {
        if (t.dtype() == DType.F32) {
            return t.segment();
        }
        MemorySegment copy = Arena.ofAuto().allocate(4L * t.numel(), 64);
        MemorySegment.copy(t.toFloatArray(), 0, copy, F32, 0, (int) t.numel());
        return copy;
    }

    @Override
    public void gelu(Tensor x, Tensor out) {
        if (out.numel() != x.numel() || x.dtype() != DType.F32 || out.dtype() != DType.F32) {
            throw new IllegalArgumentException("gelu: " + x + " into " + out);
        }
        long total = x.numel();
        MemorySegment xs = x.segment(), os = out.segment();
        int chunk = 1 << 14;
        int tasks = (int) ((total + chunk - 1) / chunk);
        pool.parallelFor(tasks, t -> {
            long from = (long) t * chunk;
            kernels.gelu(xs, 4L * from, os, 4L * from, (int) (Math.min(total, from + chunk) - from));
        });
    }

    /** Splits n rows of width d into tasks of at least ~16K elements each. */
    private int perTask(int n, int d) {
        int minRows = Math.max(1, 16384 / Math.max(1, d));
        return Math.max(minRows, (n + pool.threads() - 1) / pool.threads());
    }

    private int tasksFor(int n, int d) {
        int per = perTask(n, d);
        return (n + per - 1) / per;
    }

    @Override
    public void rope(Tensor x, int heads, int headDim, int[] positions, float[] invFreq, RopeLayout layout) {
        int n = positions.length;
        int width = heads * headDim;
        int half = headDim / 2;
        if (x.numel() != (long) n * width || invFreq.length != half) {
            throw new IllegalArgumentException("rope shapes do not agree: x " + x + ", " + n + " positions, "
                    + heads + " heads of " + headDim + ", " + invFreq.length + " frequencies");
        }
        MemorySegment xs = x.segment();
        pool.parallelFor(tasksFor(n, width), t -> {
            int per = perTask(n, width);
            float[] cos = new float[half];
            float[] sin = new float[half];
            for (int r = t * per; r < Math.min(n, (t + 1) * per); r++) {
                float pos = positions[r];
                for (int i = 0; i < half; i++) {
                    float angle = pos * invFreq[i]; // float32 product, as torch computes it
                    cos[i] = (float) Math.cos(angle);
                    sin[i] = (float) Math.sin(angle);
                }
                for (int h = 0; h < heads; h++) {
                    long base = 4L * ((long) r * width + (long) h * headDim);
                    for (int i = 0; i < half; i++) {
                        long o1, o2;
                        if (layout == RopeLayout.ROTATE_HALF) {
                            o1 = base + 4L * i;
                            o2 = base + 4L * (i + half);
                        } else {
                            o1 = base + 8L * i;
                            o2 = o1 + 4;
                        }
                        float x1 = xs.get(F32, o1), x2 = xs.get(F32, o2);
                        // x·cos + rotate(x)·sin, two products and a sum (no fma), as torch does.
                        xs.set(F32, o1, x1 * cos[i] + (-x2) * sin[i]);
                        xs.set(F32, o2, x2 * cos[i] + x1 * sin[i]);
                    }
                }
            }
        });
    }

    @Override
    public void siluMul(Tensor gate, Tensor up, Tensor out) {
        long total = gate.numel();
        MemorySegment g = gate.segment(), u = up.segment(), o = out.segment();
        int chunk = 1 << 14;
        int tasks = (int) ((total + chunk - 1) / chunk);
        pool.parallelFor(tasks, t -> {
            long end = Math.min(total, (long) (t + 1) * chunk);
            for (long i = (long) t * chunk; i < end; i++) {
                float gv = g.getAtIndex(F32, i);
                float silu = gv / (1.0f + (float) Math.exp(-gv));
                o.setAtIndex(F32, i, silu * u.getAtIndex(F32, i));
            }
        });
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        long total = a.numel();
        MemorySegment as = a.segment(), bs = b.segment(), os = out.segment();
        for (long i = 0; i < total; i++) {
            os.setAtIndex(F32, i, as.getAtIndex(F32, i) + bs.getAtIndex(F32, i));
        }
    }

    @Override
    public void embed(Tensor table, int[] ids, Tensor out) {
        int d = (int) table.dim(1);
        int vocab = (int) table.dim(0);
        for (int r = 0; r < ids.length; r++) {
            int id = ids[r];
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + vocab + ")");
            }
            if (table.dtype().isQuantized()) {
                // A quantized table's row is decoded block by block (element reads would decode a block per value).
                float[] row = new float[d];
                QuantBlocks.dequantize(table.dtype(), table.segment(), table.dtype().bytesFor((long) id * d), row, 0, d);
                for (int i = 0; i < d; i++) {
                    out.setFloat((long) r * d + i, row[i]);
                }
                continue;
            }
            for (int i = 0; i < d; i++) {
                out.setFloat((long) r * d + i, table.getFloat((long) id * d + i));
            }
        }
    }

    @Override
    public void softmax(Tensor x) {
        int d = (int) x.dim(-1);
        int n = rows(x, d);
        MemorySegment xs = x.segment();
        for (int r = 0; r < n; r++) {
            long off = 4L * r * d;
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < d; i++) {
                max = Math.max(max, xs.get(F32, off + 4L * i));
            }
            double sum = 0;
            for (int i = 0; i < d; i++) {
                float e = (float) Math.exp(xs.get(F32, off + 4L * i) - max);
                xs.set(F32, off + 4L * i, e);
                sum += e;
            }
            float inv = (float) (1.0 / sum);
            for (int i = 0; i < d; i++) {
                xs.set(F32, off + 4L * i, xs.get(F32, off + 4L * i) * inv);
            }
        }
    }

    @Override
    public int[] argmax(Tensor x) {
        int d = (int) x.dim(-1);
        int n = rows(x, d);
        int[] out = new int[n];
        MemorySegment xs = x.segment();
        for (int r = 0; r < n; r++) {
            long off = 4L * r * d;
            int best = 0;
            float bestValue = Float.NEGATIVE_INFINITY;
            boolean valid = d > 0;
            for (int i = 0; i < d; i++) {
                float v = xs.get(F32, off + 4L * i);
                if (Float.isNaN(v) || v == Float.POSITIVE_INFINITY) {
                    valid = false;
                    break;
                }
                if (v > bestValue) {
                    bestValue = v;
                    best = i;
                }
            }
            out[r] = valid && bestValue > Float.NEGATIVE_INFINITY ? best : -1;
        }
        return out;
    }

    @Override
    public LogitSummary[] summarize(Tensor x, int k) {
        LogitSummary.requireK(k);
        int d = (int) x.dim(-1);
        int n = rows(x, d);
        LogitSummary[] out = new LogitSummary[n];
        MemorySegment xs = x.segment();
        float[] row = new float[d];
        for (int r = 0; r < n; r++) {
            MemorySegment.copy(xs, F32, 4L * r * d, row, 0, d);
            out[r] = LogitSummary.of(row, k);
        }
        return out;
    }

    @Override
    public void writeKv(KvStorage kv, int layer, Tensor k, Tensor v, int[] slots) {
        HostKvStorage cache = host(kv);
        int width = cache.kvHeads() * cache.headDim();
        DType dt = cache.dtype();
        MemorySegment keys = cache.keys(layer), values = cache.values(layer);
        MemorySegment ks = k.segment(), vs = v.segment();
        if (dt == DType.F32) {
            long rowBytes = 4L * width;
            for (int r = 0; r < slots.length; r++) {
                MemorySegment.copy(ks, r * rowBytes, keys, slots[r] * rowBytes, rowBytes);
                MemorySegment.copy(vs, r * rowBytes, values, slots[r] * rowBytes, rowBytes);
            }
        } else if (dt == DType.BF16) {
            // Round to nearest even on the way in; reads widen exactly.
            for (int r = 0; r < slots.length; r++) {
                long src = 4L * r * width;
                long dst = 2L * slots[r] * width;
                for (int i = 0; i < width; i++) {
                    keys.set(BF16, dst + 2L * i, DType.floatToBf16(ks.get(F32, src + 4L * i)));
                    values.set(BF16, dst + 2L * i, DType.floatToBf16(vs.get(F32, src + 4L * i)));
                }
            }
        } else {
            throw new IllegalArgumentException("the KV cache stores f32 or bf16, not " + dt);
        }
    }

    @Override
    public void attention(Tensor q, KvStorage kv, int layer, AttentionRows rows, int heads, float scale, Tensor out) {
        HostKvStorage cache = host(kv);
        int n = rows.rows();
        int headDim = cache.headDim();
        int kvHeads = cache.kvHeads();
        int group = heads / kvHeads;
        int width = heads * headDim;
        int slotWidth = kvHeads * headDim;
        int shift = Integer.numberOfTrailingZeros(cache.blockSize());
        int mask = cache.blockSize() - 1;
        DType dt = cache.dtype();
        if (dt != DType.F32 && dt != DType.BF16) {
            throw new IllegalArgumentException("the KV cache stores f32 or bf16, not " + dt);
        }
        long elem = dt.byteSize();
        MemorySegment qs = q.segment(), os = out.segment();
        MemorySegment keys = cache.keys(layer), values = cache.values(layer);
        int[][] tables = rows.blockTables();
        int[] prefixes = rows.prefix();
        int[][] extras = rows.extra();
        // One task per (row, KV head): each key and value row of that head is read once and used by
        // every query head of its group. Each (row, head) output is still computed start to finish by
        // one thread in the same order as alone: keys visited in increasing logical order (the prefix
        // [0, prefix), then the sorted extra positions), the softmax sum in that order, then the values.
        pool.parallelFor(n * kvHeads, t -> {
            int r = t / kvHeads, kvh = t % kvHeads;
            int[] table = tables[r];
            int prefix = prefixes[r];
            int extraCount = rows.extraCount(r);
            int[] extra = extraCount == 0 ? null : extras[r];
            int visible = prefix + extraCount;
            long headOff = (long) kvh * headDim;
            long qBase = 4L * ((long) r * width + (long) kvh * group * headDim);
            float[] buf = scratch(group * (visible + headDim));
            float[] max = new float[group];
            java.util.Arrays.fill(max, Float.NEGATIVE_INFINITY);
            for (int j = 0; j < visible; j++) {
                int pos = j < prefix ? j : extra[j - prefix];
                int slot = (table[pos >> shift] << shift) | (pos & mask);
                long kOff = elem * ((long) slot * slotWidth + headOff);
                for (int g = 0; g < group; g++) {
                    float s = kernels.dot(qs, qBase + 4L * g * headDim, keys, kOff, dt, headDim) * scale;
                    buf[g * visible + j] = s;
                    max[g] = Math.max(max[g], s);
                }
            }
            float[] inv = new float[group];
            for (int g = 0; g < group; g++) {
                double sum = 0;
                int base = g * visible;
                for (int j = 0; j < visible; j++) {
                    float e = (float) Math.exp(buf[base + j] - max[g]);
                    buf[base + j] = e;
                    sum += e;
                }
                inv[g] = (float) (1.0 / sum);
            }
            float[][] acc = new float[group][headDim];
            for (int j = 0; j < visible; j++) {
                int pos = j < prefix ? j : extra[j - prefix];
                int slot = (table[pos >> shift] << shift) | (pos & mask);
                long vOff = elem * ((long) slot * slotWidth + headOff);
                for (int g = 0; g < group; g++) {
                    kernels.axpy(buf[g * visible + j] * inv[g], values, vOff, dt, acc[g], headDim);
                }
            }
            for (int g = 0; g < group; g++) {
                MemorySegment.copy(acc[g], 0, os, F32, qBase + 4L * g * headDim, headDim);
            }
        });
    }

    /** {@link MemoryBandwidth} on this backend's threads; {@code bytes} is rounded to a multiple of 64 per thread. */
    @Override
    public Roofline measureReadBandwidth(long bytes, int passes, Progress progress) {
        long multiple = 64L * pool.threads();
        long rounded = Math.max(multiple, bytes / multiple * multiple);
        return new Roofline(pool.threads(), MemoryBandwidth.measure(pool, rounded, passes, progress).bytesPerSecond());
    }

    /** {@link FmaPeak} on this backend's threads. */
    @Override
    public Roofline measureMultiplyAddPeak(int passes, int millisPerPass) {
        return new Roofline(pool.threads(), FmaPeak.measure(pool, passes, millisPerPass).macsPerSecond());
    }

    /** Stops the threads and frees every tensor still allocated. */
    @Override
    public void close() {
        java.util.List<Arena> open;
        synchronized (allocations) {
            if (closed) {
                return;
            }
            closed = true;
            open = new java.util.ArrayList<>(allocations.values());
            allocations.clear();
        }
        pool.close();
        for (Arena a : open) {
            a.close();
        }
    }
}
