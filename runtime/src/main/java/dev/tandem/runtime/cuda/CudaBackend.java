package dev.tandem.runtime.cuda;

import dev.tandem.bindings.cuda.CudaException;
import dev.tandem.bindings.cuda.CudaLibrary;
import dev.tandem.runtime.AttentionRows;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.DeviceSampling;
import dev.tandem.runtime.LogitMix;
import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.Placement;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.Roofline;
import dev.tandem.runtime.RopeLayout;
import dev.tandem.runtime.RowSelection;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvStorage;
import dev.tandem.runtime.rng.RngPurpose;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@link Backend} on a CUDA device: Tandem's own kernels ({@code native/cuda}) driven through the
 * driver API ({@link CudaLibrary}). Activations, weights and KV storage live in device memory; weights
 * keep their checkpoint dtype (f32, bf16 or f16, or llama.cpp's block formats q8_0, q4_0, q4_k and q6_k for
 * matmul and embedding weights, read in place and decoded exactly as {@code QuantBlocks} decodes them) and
 * every kernel accumulates in strict f32. Every op is
 * batch-invariant like the CPU backend's (the kernels' comments say how), though not bit-equal to it: the
 * two sum in different orders, and the equivalence suite bounds the difference.
 *
 * <p>The same class drives NVIDIA's driver with the embedded fatbin and the host build of the kernels
 * ({@code native/cuda/host}, which exports the driver's entry points), which is how the tests prove the
 * kernels on machines without a GPU. Ops are issued one at a time (the methods are synchronized) to the
 * default stream without waiting for their kernels; the copies that bring results to the host wait for
 * what was queued before them. A kernel that fails is therefore reported by the next call that waits,
 * naming that call and the CUDA error. Small per-call arguments (token ids, positions, slots, attention
 * descriptors) travel through one staging buffer, whose synchronous upload waits for the kernels still
 * reading the previous ones.
 */
public final class CudaBackend implements Backend, DeviceSampling {
    private final CudaLibrary cuda;
    private final MemorySegment module;
    private final String deviceName;
    private final Map<String, MemorySegment> functions = new HashMap<>();
    /** Tensors {@link #allocate} gave out. */
    private final IdentityHashMap<Tensor, Long> allocations = new IdentityHashMap<>();
    /** Device copies of the weights, by the host tensor they were made from. */
    private final IdentityHashMap<Tensor, Tensor> weights = new IdentityHashMap<>();
    private final List<CudaKvStorage> kvStorages = new ArrayList<>();
    private final ThreadLocal<Boolean> contextCurrent = ThreadLocal.withInitial(() -> false);
    /** The stream every op is queued on: the legacy default stream, which orders the synchronous copies too. */
    private final CudaLibrary.Stream stream;
    /** Device buffer for per-call arguments, grown on demand. */
    private long staging;
    private long bytesCopiedToHost;
    private long stagingBytes;
    /** Scratch for attention's per-split partial results, grown on demand. */
    private long partialBuffer;
    private long partialBytes;
    /** False while a launch may still be running (release waits for it). */
    private boolean synchronizedSinceLaunch = true;
    private boolean closed;

    /**
     * Opens device 0 of {@code cuda} and loads {@code image} (a fatbin; the host build ignores it).
     *
     * @throws TandemException when the library is unavailable or the module does not load
     */
    public CudaBackend(CudaLibrary cuda, byte[] image) {
        if (!cuda.available()) {
            throw new TandemException(cuda.reason());
        }
        this.cuda = cuda;
        try {
            if (cuda.deviceCount() < 1) {
                throw new TandemException(cuda.library() + " sees no CUDA device.");
            }
            this.deviceName = cuda.deviceName(0);
            cuda.usePrimaryContext(0);
            contextCurrent.set(true);
            this.module = cuda.loadModule(image);
            this.stream = cuda.defaultStream();
        } catch (CudaException e) {
            throw new TandemException("could not open the CUDA device: " + e.getMessage());
        }
    }

    @Override
    public String name() {
        return "cuda(" + deviceName + ")";
    }

    /** One stream. */
    @Override
    public int parallelism() {
        return 1;
    }

    @Override
    public Placement placement() {
        return Placement.DEVICE;
    }

    // ---------------------------------------------------------------------------------------------------
    // Memory

    private void enter() {
        if (closed) {
            throw new IllegalStateException("backend " + name() + " is closed");
        }
        if (!contextCurrent.get()) {
            cuda.usePrimaryContext(0);
            contextCurrent.set(true);
        }
    }

    /** Device memory of {@code bytes} (at least one 256-byte unit, so every tensor has an address), zero-filled. */
    private long deviceMemory(long bytes, String what) {
        long size = Math.max(256, bytes);
        long address;
        try {
            address = cuda.allocate(size);
        } catch (CudaException e) {
            if (e.outOfMemory()) {
                throw new TandemException("the CUDA device " + deviceName + " has no room for " + what + " ("
                        + bytes + " bytes); use a smaller model, batch or KV budget.");
            }
            throw e;
        }
        cuda.fill(address, (byte) 0, size);
        return address;
    }

    /** Frees device memory once every kernel queued before (which may still read or write it) has finished. */
    private void release(long address) {
        if (!synchronizedSinceLaunch) {
            cuda.synchronize();
            synchronizedSinceLaunch = true;
        }
        cuda.free(address);
    }

    @Override
    public synchronized long allocatedBytes() {
        long bytes = 0;
        for (Tensor t : allocations.keySet()) {
            bytes += t.byteSize();
        }
        return bytes;
    }

    @Override
    public synchronized Tensor allocate(DType dtype, long... shape) {
        enter();
        long bytes = Math.multiplyExact(Tensor.elementCount(shape), (long) dtype.byteSize());
        long address = deviceMemory(bytes, "activations (" + dtype.lowerName() + " " + java.util.Arrays.toString(shape) + ")");
        Tensor t = Tensor.onDevice(dtype, address, shape);
        allocations.put(t, address);
        return t;
    }

    @Override
    public synchronized void free(Tensor tensor) {
        if (closed) {
            return; // closing freed everything
        }
        Long address = allocations.remove(tensor);
        if (address == null) {
            throw new IllegalArgumentException("tensor " + tensor + " was not allocated by this backend, or is already freed");
        }
        enter();
        release(address);
    }

    /**
     * Uploads the weight once, in its own dtype (a block format's blocks as they are); later calls with the same
     * host tensor give the same device tensor.
     */
    @Override
    public synchronized Tensor loadWeight(Tensor host) {
        if (host.placement() != Placement.HOST) {
            throw new IllegalArgumentException("loadWeight takes a host tensor, not the device tensor " + host);
        }
        Tensor loaded = weights.get(host);
        if (loaded != null) {
            return loaded;
        }
        enter();
        long address = deviceMemory(host.byteSize(), "weight " + host);
        cuda.copyToDevice(address, host.segment().asSlice(0, host.byteSize()));
        loaded = Tensor.onDevice(host.dtype(), address, host.shape());
        weights.put(host, loaded);
        return loaded;
    }

    @Override
    public synchronized KvStorage allocateKv(int layers, int kvHeads, int headDim, int blockSize, int numBlocks, DType dtype) {
        KvStorage.checkShape(layers, kvHeads, headDim, blockSize, numBlocks, dtype);
        enter();
        CudaKvStorage kv = new CudaKvStorage(this, layers, kvHeads, headDim, blockSize, numBlocks, dtype);
        kvStorages.add(kv);
        return kv;
    }

    /** Device memory for a KV storage ({@link CudaKvStorage}), zero-filled. */
    synchronized long allocateKvMemory(long bytes) {
        enter();
        return deviceMemory(bytes, "the KV cache");
    }

    synchronized void freeKvMemory(CudaKvStorage kv, long[] addresses) {
        kvStorages.remove(kv);
        if (closed) {
            return;
        }
        enter();
        for (long a : addresses) {
            if (a != 0) {
                release(a);
            }
        }
    }

    private static CudaKvStorage device(KvStorage kv) {
        if (kv instanceof CudaKvStorage c) {
            return c;
        }
        throw new IllegalArgumentException("the CUDA backend reads KV storage in device memory, not " + kv.getClass().getSimpleName());
    }

    private static void requireDevice(Tensor t, String op) {
        if (t.placement() != Placement.DEVICE) {
            throw new IllegalArgumentException(op + " on the CUDA backend needs device tensors, not the host tensor " + t);
        }
    }

    private static void requireF32(Tensor t, String op) {
        requireDevice(t, op);
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException(op + " needs f32 activations, not " + t);
        }
    }

    /**
     * Copies int, float and long arrays into the staging buffer, each 16-byte aligned, and returns the device
     * address of each (in argument order); {@code reserve} more bytes follow the last array, for outputs
     * (their address is the last element of the result).
     */
    private long[] stage(long reserve, Object... arrays) {
        long[] offsets = new long[arrays.length + 1];
        long bytes = 0;
        for (int i = 0; i < arrays.length; i++) {
            offsets[i] = bytes;
            long size = switch (arrays[i]) {
                case int[] a -> 4L * a.length;
                case float[] f -> 4L * f.length;
                case long[] l -> 8L * l.length;
                default -> throw new IllegalArgumentException("cannot stage " + arrays[i].getClass().getSimpleName());
            };
            bytes += (size + 15) / 16 * 16;
        }
        offsets[arrays.length] = bytes;
        long total = bytes + reserve;
        if (total > stagingBytes) {
            if (staging != 0) {
                release(staging);
                staging = 0;
            }
            stagingBytes = Math.max(total, Math.max(1 << 16, 2 * stagingBytes));
            staging = deviceMemory(stagingBytes, "kernel arguments");
        }
        if (bytes > 0) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment host = arena.allocate(bytes, 16);
                for (int i = 0; i < arrays.length; i++) {
                    switch (arrays[i]) {
                        case int[] a -> MemorySegment.copy(a, 0, host, ValueLayout.JAVA_INT, offsets[i], a.length);
                        case float[] f -> MemorySegment.copy(f, 0, host, ValueLayout.JAVA_FLOAT, offsets[i], f.length);
                        case long[] l -> MemorySegment.copy(l, 0, host, ValueLayout.JAVA_LONG, offsets[i], l.length);
                        default -> throw new AssertionError();
                    }
                }
                cuda.copyToDevice(staging, host);
            }
        }
        long[] addresses = new long[offsets.length];
        for (int i = 0; i < offsets.length; i++) {
            addresses[i] = staging + offsets[i];
        }
        return addresses;
    }

    private MemorySegment function(String name) {
        return functions.computeIfAbsent(name, n -> cuda.function(module, n));
    }

    /**
     * Queues {@code kernel} over {@code gridX × gridY} blocks of {@code block} threads on the default stream,
     * without waiting; nothing for an empty grid. The stream runs launches and copies in order, and every
     * copy to the host waits for what was queued before it, so results are read only once computed.
     */
    private void launch(String kernel, long gridX, int gridY, int block, CudaLibrary.Args args) {
        launch(kernel, gridX, gridY, 1, block, args);
    }

    private void launch(String kernel, long gridX, int gridY, int gridZ, int block, CudaLibrary.Args args) {
        if (gridX == 0 || gridY == 0 || gridZ == 0) {
            return;
        }
        if (gridX > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(kernel + " would need " + gridX + " blocks, more than a grid holds");
        }
        cuda.launchAsync(function(kernel), (int) gridX, gridY, gridZ, block, 1, 1, 0, stream, args);
        synchronizedSinceLaunch = false;
    }

    private static String suffix(DType dtype) {
        return switch (dtype) {
            case F32 -> "f32";
            case BF16 -> "bf16";
            case F16 -> "f16";
            case Q8_0, Q4_0, Q4_K, Q6_K -> throw new IllegalArgumentException("the CUDA backend reads " + dtype.lowerName()
                    + " weights in matmul and embed only, not here");
        };
    }

    /**
     * The kernel suffix of a matmul or embedding weight: {@link #suffix} for the plain types, else the block
     * format's ({@code quant.cuh}), whose rows of {@code width} values must be whole blocks.
     */
    private static String weightSuffix(DType dtype, long width, String op) {
        if (!dtype.isQuantized()) {
            return suffix(dtype);
        }
        if (width % dtype.blockElements() != 0) {
            throw new IllegalArgumentException(op + ": rows of " + width + " " + dtype.lowerName() + " values are not whole blocks of "
                    + dtype.blockElements());
        }
        return dtype.lowerName();
    }

    private static int width(Tensor t) {
        return (int) (t.numel() / Math.max(1, t.dim(0)));
    }

    // ---------------------------------------------------------------------------------------------------
    // Copies

    @Override
    public synchronized void gatherRows(Tensor src, int[] rows, Tensor dst) {
        requireDevice(src, "gatherRows");
        requireDevice(dst, "gatherRows");
        long width = src.numel() / Math.max(1, src.dim(0));
        if (dst.dtype() != src.dtype() || dst.numel() / Math.max(1, dst.dim(0)) != width || dst.dim(0) < rows.length) {
            throw new IllegalArgumentException("gatherRows of " + rows.length + " rows of " + src + " into " + dst);
        }
        for (int r : rows) {
            if (r < 0 || r >= src.dim(0)) {
                throw new IndexOutOfBoundsException("row " + r + " of " + src);
            }
        }
        enter();
        long rowBytes = width * src.dtype().byteSize();
        long[] a = stage(0, (Object) rows);
        boolean words = rowBytes % 4 == 0;
        launch(words ? "tandem_gather_rows_u32" : "tandem_gather_rows_u8", rows.length, 1, 256, new CudaLibrary.Args()
                .pointer(dst.deviceAddress()).pointer(src.deviceAddress()).pointer(a[0]).i32(rows.length)
                .i64(words ? rowBytes / 4 : rowBytes));
    }

    /** Copies device memory at {@code address} into all of {@code host}, counting the bytes ({@link #bytesCopiedToHost}). */
    private void copyToHost(MemorySegment host, long address) {
        cuda.copyToHost(host, address);
        bytesCopiedToHost += host.byteSize();
    }

    /**
     * Bytes copied from this backend's device memory to the host since it opened: rows of logits or hidden
     * states ({@link #readRows}), ids ({@link #argmax}, {@link #sampleWithTemperature}) and draws. Decoding that
     * keeps its logits on the device reads back a few ids per pass; the tests hold it to that.
     */
    public synchronized long bytesCopiedToHost() {
        return bytesCopiedToHost;
    }

    @Override
    public synchronized float[][] readRows(Tensor src, int from, int count) {
        requireF32(src, "readRows");
        int width = width(src);
        Tensor part = src.rows(from, count);
        float[][] out = new float[count][width];
        if (count == 0 || width == 0) {
            return out;
        }
        enter();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(part.byteSize(), 16);
            copyToHost(host, part.deviceAddress());
            for (int i = 0; i < count; i++) {
                MemorySegment.copy(host, ValueLayout.JAVA_FLOAT, 4L * i * width, out[i], 0, width);
            }
        }
        return out;
    }

    @Override
    public synchronized void writeRows(float[][] rows, Tensor dst, int from) {
        requireF32(dst, "writeRows");
        int width = width(dst);
        Tensor part = dst.rows(from, rows.length);
        for (int i = 0; i < rows.length; i++) {
            if (rows[i].length != width) {
                throw new IllegalArgumentException("writeRows: row " + i + " has width " + rows[i].length + ", " + dst + " has " + width);
            }
        }
        if (rows.length == 0 || width == 0) {
            return;
        }
        enter();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(part.byteSize(), 16);
            for (int i = 0; i < rows.length; i++) {
                MemorySegment.copy(rows[i], 0, host, ValueLayout.JAVA_FLOAT, 4L * i * width, width);
            }
            cuda.copyToDevice(part.deviceAddress(), host);
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // Compute

    /** Weight rows per matmul block (TANDEM_MATMUL_WARPS in matmul.cuh). */
    private static final int MATMUL_COLUMNS_PER_BLOCK = 8;

    @Override
    public synchronized void matmul(Tensor x, Tensor w, Tensor out) {
        requireF32(x, "matmul");
        requireF32(out, "matmul");
        requireDevice(w, "matmul");
        int k = (int) w.dim(-1);
        int m = (int) w.dim(0);
        int n = (int) (x.numel() / Math.max(1, k));
        if (w.rank() != 2 || x.numel() != (long) n * k || out.numel() != (long) n * m) {
            throw new IllegalArgumentException("matmul shapes do not agree: x " + x + ", w " + w + ", out " + out);
        }
        String kernel = "tandem_matmul_" + weightSuffix(w.dtype(), k, "matmul");
        enter();
        launch(kernel, (m + MATMUL_COLUMNS_PER_BLOCK - 1) / MATMUL_COLUMNS_PER_BLOCK, 1,
                32 * MATMUL_COLUMNS_PER_BLOCK, new CudaLibrary.Args()
                        .pointer(out.deviceAddress()).pointer(x.deviceAddress()).pointer(w.deviceAddress()).i32(n).i32(k).i32(m));
    }

    @Override
    public synchronized void addBias(Tensor x, Tensor bias) {
        requireF32(x, "addBias");
        requireDevice(bias, "addBias");
        int m = (int) bias.numel();
        long n = x.numel() / Math.max(1, m);
        if (n * m != x.numel()) {
            throw new IllegalArgumentException("addBias: a bias of " + m + " does not divide " + x);
        }
        enter();
        launch("tandem_add_bias_" + suffix(bias.dtype()), (x.numel() + 255) / 256, 1, 256, new CudaLibrary.Args()
                .pointer(x.deviceAddress()).pointer(bias.deviceAddress()).i64(n).i32(m));
    }

    @Override
    public synchronized void rmsnorm(Tensor x, Tensor weight, float eps, Tensor out) {
        requireF32(x, "rmsnorm");
        requireF32(out, "rmsnorm");
        requireDevice(weight, "rmsnorm");
        int d = (int) weight.numel();
        int n = (int) (x.numel() / Math.max(1, d));
        if ((long) n * d != x.numel() || out.numel() != x.numel()) {
            throw new IllegalArgumentException("rmsnorm shapes do not agree: x " + x + ", weight " + weight + ", out " + out);
        }
        enter();
        launch("tandem_rmsnorm_" + suffix(weight.dtype()), n, 1, 256, new CudaLibrary.Args()
                .pointer(out.deviceAddress()).pointer(x.deviceAddress()).pointer(weight.deviceAddress()).i32(n).i32(d).f32(eps));
    }

    @Override
    public synchronized void layerNorm(Tensor x, Tensor weight, Tensor bias, float eps, Tensor out) {
        requireF32(x, "layerNorm");
        requireF32(out, "layerNorm");
        requireDevice(weight, "layerNorm");
        requireDevice(bias, "layerNorm");
        int d = (int) weight.numel();
        int n = (int) (x.numel() / Math.max(1, d));
        if ((long) n * d != x.numel() || out.numel() != x.numel() || bias.numel() != d) {
            throw new IllegalArgumentException("layerNorm shapes do not agree: x " + x + ", weight " + weight + ", bias " + bias
                    + ", out " + out);
        }
        if (bias.dtype() != weight.dtype()) {
            // One kernel per weight type reads both; a checkpoint stores the two in one dtype.
            throw new IllegalArgumentException("layerNorm needs weight and bias of one dtype, not " + weight + " and " + bias);
        }
        enter();
        launch("tandem_layer_norm_" + suffix(weight.dtype()), n, 1, 256, new CudaLibrary.Args().pointer(out.deviceAddress())
                .pointer(x.deviceAddress()).pointer(weight.deviceAddress()).pointer(bias.deviceAddress()).i32(n).i32(d).f32(eps));
    }

    @Override
    public synchronized void rope(Tensor x, int heads, int headDim, int[] positions, float[] invFreq, RopeLayout layout) {
        requireF32(x, "rope");
        int n = positions.length;
        if (x.numel() != (long) n * heads * headDim || invFreq.length != headDim / 2) {
            throw new IllegalArgumentException("rope shapes do not agree: x " + x + ", " + n + " positions, "
                    + heads + " heads of " + headDim + ", " + invFreq.length + " frequencies");
        }
        enter();
        long[] a = stage(0, positions, invFreq);
        launch("tandem_rope_f32", n, 1, 128, new CudaLibrary.Args().pointer(x.deviceAddress()).pointer(a[0]).pointer(a[1])
                .i32(n).i32(heads).i32(headDim).i32(layout == RopeLayout.ROTATE_HALF ? 1 : 0));
    }

    @Override
    public synchronized void siluMul(Tensor gate, Tensor up, Tensor out) {
        elementwise("tandem_silu_mul_f32", "siluMul", gate, up, out);
    }

    @Override
    public synchronized void gelu(Tensor x, Tensor out) {
        requireF32(x, "gelu");
        requireF32(out, "gelu");
        if (x.numel() != out.numel()) {
            throw new IllegalArgumentException("gelu shapes do not agree: " + x + ", " + out);
        }
        enter();
        launch("tandem_gelu_f32", (x.numel() + 255) / 256, 1, 256, new CudaLibrary.Args()
                .pointer(out.deviceAddress()).pointer(x.deviceAddress()).i64(x.numel()));
    }

    @Override
    public synchronized void add(Tensor a, Tensor b, Tensor out) {
        elementwise("tandem_add_f32", "add", a, b, out);
    }

    private void elementwise(String kernel, String op, Tensor a, Tensor b, Tensor out) {
        requireF32(a, op);
        requireF32(b, op);
        requireF32(out, op);
        if (a.numel() != b.numel() || a.numel() != out.numel()) {
            throw new IllegalArgumentException(op + " shapes do not agree: " + a + ", " + b + ", " + out);
        }
        enter();
        launch(kernel, (a.numel() + 255) / 256, 1, 256, new CudaLibrary.Args()
                .pointer(out.deviceAddress()).pointer(a.deviceAddress()).pointer(b.deviceAddress()).i64(a.numel()));
    }

    @Override
    public synchronized void embed(Tensor table, int[] ids, Tensor out) {
        requireDevice(table, "embed");
        requireF32(out, "embed");
        int d = (int) table.dim(1);
        int vocab = (int) table.dim(0);
        for (int id : ids) {
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        if (out.numel() < (long) ids.length * d) {
            throw new IllegalArgumentException("embed: " + ids.length + " rows of " + d + " do not fit in " + out);
        }
        String kernel = "tandem_embedding_gather_" + weightSuffix(table.dtype(), d, "embed");
        enter();
        long[] a = stage(0, (Object) ids);
        launch(kernel, ids.length, 1, 256, new CudaLibrary.Args()
                .pointer(out.deviceAddress()).pointer(table.deviceAddress()).pointer(a[0]).i32(ids.length).i32(d).i32(vocab));
    }

    @Override
    public synchronized void softmax(Tensor x) {
        requireF32(x, "softmax");
        int d = (int) x.dim(-1);
        int n = (int) (x.numel() / Math.max(1, d));
        enter();
        launch("tandem_softmax_f32", n, 1, 256, new CudaLibrary.Args().pointer(x.deviceAddress()).i32(n).i32(d));
    }

    @Override
    public synchronized int[] argmax(Tensor x) {
        requireF32(x, "argmax");
        int d = (int) x.dim(-1);
        int n = (int) (x.numel() / Math.max(1, d));
        if (n == 0) {
            return new int[0];
        }
        enter();
        long[] a = stage(4L * n);
        launch("tandem_argmax_f32", n, 1, 256, new CudaLibrary.Args().pointer(a[0]).pointer(x.deviceAddress()).i32(n).i32(d));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(4L * n, 4);
            copyToHost(host, a[0]);
            return host.toArray(ValueLayout.JAVA_INT);
        }
    }

    @Override
    public synchronized LogitSummary[] summarize(Tensor x, int k) {
        requireF32(x, "summarize");
        LogitSummary.requireK(k);
        int d = (int) x.dim(-1);
        int n = (int) (x.numel() / Math.max(1, d));
        if (n == 0) {
            return new LogitSummary[0];
        }
        enter();
        // One staged region, copied back at once: the sums (2 doubles a row), then the ids, then the values.
        long sumBytes = 16L * n;
        long idBytes = 4L * n * k;
        long[] a = stage(sumBytes + 2 * idBytes);
        launch("tandem_logit_summary_f32", n, 1, 256, new CudaLibrary.Args().pointer(a[0]).pointer(a[0] + sumBytes)
                .pointer(a[0] + sumBytes + idBytes).pointer(x.deviceAddress()).i32(n).i32(d).i32(k));
        LogitSummary[] out = new LogitSummary[n];
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(sumBytes + 2 * idBytes, 8);
            copyToHost(host, a[0]);
            for (int r = 0; r < n; r++) {
                int count = 0;
                while (count < k && host.get(ValueLayout.JAVA_INT, sumBytes + 4L * (r * (long) k + count)) >= 0) {
                    count++;
                }
                int[] ids = new int[count];
                float[] values = new float[count];
                for (int j = 0; j < count; j++) {
                    ids[j] = host.get(ValueLayout.JAVA_INT, sumBytes + 4L * (r * (long) k + j));
                    values[j] = host.get(ValueLayout.JAVA_FLOAT, sumBytes + idBytes + 4L * (r * (long) k + j));
                }
                out[r] = new LogitSummary(ids, values, host.get(ValueLayout.JAVA_DOUBLE, 16L * r),
                        host.get(ValueLayout.JAVA_DOUBLE, 16L * r + 8));
            }
        }
        return out;
    }

    /** The most rows {@link #selectRows} chooses among in one launch. */
    static final int SELECT_MAX_ROWS = 1024;

    @Override
    public synchronized RowSelection selectRows(Tensor x, RowSelection.Score score, int count, double threshold) {
        requireF32(x, "selectRows");
        RowSelection.requireArguments(count, threshold);
        int d = (int) x.dim(-1);
        int n = (int) (x.numel() / Math.max(1, d));
        if (n > SELECT_MAX_ROWS) {
            throw new IllegalArgumentException("the device chooses among at most " + SELECT_MAX_ROWS + " rows, not " + n + ".");
        }
        if (n == 0) {
            return new RowSelection(new int[0], new int[0]);
        }
        enter();
        long[] a = stage(4L * (1 + 2L * n));
        launch("tandem_select_rows_f32", 1, 1, 256, new CudaLibrary.Args().pointer(a[0]).pointer(x.deviceAddress()).i32(n).i32(d)
                .i32(score.ordinal()).i32(count).f64(threshold));
        int[] out;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(4L * (1 + 2L * n), 4);
            copyToHost(host, a[0]);
            out = host.toArray(ValueLayout.JAVA_INT);
        }
        if (out[0] < 0) {
            throw new IllegalArgumentException("row " + (-1 - out[0]) + " of the logits has no softmax (it holds NaN or +Infinity, "
                    + "or only -Infinity).");
        }
        int k = out[0];
        return new RowSelection(java.util.Arrays.copyOfRange(out, 1, 1 + k), java.util.Arrays.copyOfRange(out, 1 + k, 1 + 2 * k));
    }

    /** The mix runs where the rows are: only the weights go to the device, and nothing comes back. */
    @Override
    public synchronized void mixLogits(Tensor x, LogitMix mix, Tensor out) {
        requireF32(x, "mixLogits");
        requireF32(out, "mixLogits");
        int width = (int) x.dim(-1);
        mix.requireRows(x.numel() / Math.max(1, width));
        if (out.numel() != width) {
            throw new IllegalArgumentException("mixLogits writes one row of " + width + " values, but the output is " + out);
        }
        enter();
        long[] a = stage(0, (Object) mix.weights());
        launch("tandem_mix_logits_f32", 1, 1, 256, new CudaLibrary.Args().pointer(out.deviceAddress()).pointer(x.deviceAddress())
                .pointer(a[0]).i32(mix.rows()).i32(width).i32(mix.masks() ? mix.maskRow() : -1).f64(mix.logAlpha()));
    }

    @Override
    public synchronized void writeKv(KvStorage kv, int layer, Tensor k, Tensor v, int[] slots) {
        CudaKvStorage cache = device(kv);
        requireF32(k, "writeKv");
        requireF32(v, "writeKv");
        int width = cache.kvHeads() * cache.headDim();
        if (k.numel() < (long) slots.length * width || v.numel() < (long) slots.length * width) {
            throw new IllegalArgumentException("writeKv: " + slots.length + " rows of " + width + " do not fit in " + k + " and " + v);
        }
        cache.checkLayer(layer);
        for (int s : slots) {
            cache.checkSlot(s);
        }
        enter();
        long[] a = stage(0, (Object) slots);
        launch("tandem_write_kv_" + suffix(cache.dtype()), slots.length, 1, 256, new CudaLibrary.Args()
                .pointer(cache.keys(layer)).pointer(cache.values(layer)).pointer(k.deviceAddress()).pointer(v.deviceAddress())
                .pointer(a[0]).i32(slots.length).i32(width));
    }

    /** The largest head the attention kernel takes (TANDEM_ATTENTION_MAX_HEAD_DIM in attention.cuh). */
    static final int MAX_HEAD_DIM = 256;

    @Override
    public synchronized void attention(Tensor q, KvStorage kv, int layer, AttentionRows rows, int heads, float scale, Tensor out) {
        CudaKvStorage cache = device(kv);
        requireF32(q, "attention");
        requireF32(out, "attention");
        int n = rows.rows();
        int headDim = cache.headDim();
        int kvHeads = cache.kvHeads();
        if (headDim > MAX_HEAD_DIM) {
            throw new IllegalArgumentException("the CUDA attention kernel takes heads of at most " + MAX_HEAD_DIM
                    + " dimensions, this cache has " + headDim);
        }
        if (heads % kvHeads != 0 || q.numel() != (long) n * heads * headDim || out.numel() != q.numel()) {
            throw new IllegalArgumentException("attention shapes do not agree: q " + q + ", out " + out + ", " + n + " rows of "
                    + heads + " heads over " + kvHeads + " KV heads of " + headDim);
        }
        cache.checkLayer(layer);
        // Cut the rows into launches whose partial results fit partialBudget (at least one row each), and
        // flatten (and so check) every launch's rows before the first is queued.
        long partialPerSplit = 4L * heads * (headDim + 2);
        List<int[]> launches = new ArrayList<>(); // {from, to, maxSplits}
        List<int[]> descriptors = new ArrayList<>();
        for (int from = 0; from < n; ) {
            int to = from;
            int maxSplits = 1;
            while (to < n) {
                int splits = Math.max(maxSplits, splits(rows.visibleCount(to)));
                if (to > from && (long) (to - from + 1) * splits * partialPerSplit > partialBudget) {
                    break;
                }
                maxSplits = splits;
                to++;
            }
            launches.add(new int[] {from, to, maxSplits});
            descriptors.add(descriptor(rows, from, to, cache.blockSize(), cache.numBlocks()));
            from = to;
        }
        enter();
        for (int i = 0; i < launches.size(); i++) {
            int from = launches.get(i)[0], count = launches.get(i)[1] - from, maxSplits = launches.get(i)[2];
            long[] a = stage(0, (Object) descriptors.get(i));
            long partial = partials((long) count * maxSplits * partialPerSplit);
            launch("tandem_attention_split_" + suffix(cache.dtype()), count, heads, maxSplits, 128, new CudaLibrary.Args()
                    .pointer(partial).pointer(q.rows(from, count).deviceAddress()).pointer(cache.keys(layer))
                    .pointer(cache.values(layer)).pointer(a[0]).i32(count).i32(heads).i32(kvHeads).i32(headDim)
                    .i32(Integer.numberOfTrailingZeros(cache.blockSize())).f32(scale).i32(SPLIT_KEYS).i32(maxSplits));
            launch("tandem_attention_merge", count, heads, 1, 128, new CudaLibrary.Args()
                    .pointer(out.rows(from, count).deviceAddress()).pointer(partial).pointer(a[0]).i32(count).i32(heads)
                    .i32(headDim).i32(SPLIT_KEYS).i32(maxSplits));
        }
    }

    /**
     * Keys per split of the attention kernel: a row that sees v keys is spread over ⌈v / SPLIT_KEYS⌉ blocks
     * per head, a count that depends only on the row (so its result does too).
     */
    static final int SPLIT_KEYS = 256;
    /** Most bytes of per-split partial results one attention launch may write; more rows take more launches. */
    private long partialBudget = 64L << 20;

    /** Sets the budget above (tests make it small to exercise the launches over row ranges). */
    synchronized void setPartialBudget(long bytes) {
        partialBudget = bytes;
    }

    static int splits(int visible) {
        return visible <= SPLIT_KEYS ? 1 : (visible + SPLIT_KEYS - 1) / SPLIT_KEYS;
    }

    /** The scratch buffer for attention's partial results, at least {@code bytes} (grown, kept). */
    private long partials(long bytes) {
        if (bytes > partialBytes) {
            if (partialBuffer != 0) {
                release(partialBuffer);
                partialBuffer = 0;
            }
            partialBytes = Math.max(bytes, 2 * partialBytes);
            partialBuffer = deviceMemory(partialBytes, "attention's partial results");
        }
        return partialBuffer;
    }

    /**
     * Rows {@code [from, to)} of {@code rows} flattened for the attention kernels (attention.cuh): four ints per
     * row (where its block table starts, its prefix, where its extra positions start, how many it sees), then
     * each distinct block table and extra array once. Every block a row reads must be a block of the cache.
     */
    static int[] descriptor(AttentionRows rows, int from, int to, int blockSize, int numBlocks) {
        int n = to - from;
        IdentityHashMap<int[], Integer> placed = new IdentityHashMap<>();
        List<int[]> arrays = new ArrayList<>();
        int length = 4 * n;
        int[] tableAt = new int[n], extraAt = new int[n];
        for (int i = 0; i < n; i++) {
            int r = from + i;
            int[] table = rows.blockTables()[r];
            int needed = (rows.extent(r) + blockSize - 1) / blockSize;
            if (needed > table.length) {
                throw new IllegalArgumentException("row " + r + " reads position " + (rows.extent(r) - 1) + " but its block table has "
                        + table.length + " blocks of " + blockSize);
            }
            for (int b = 0; b < needed; b++) {
                if (table[b] < 0 || table[b] >= numBlocks) {
                    throw new IllegalArgumentException("row " + r + "'s block table names block " + table[b] + " of a cache of " + numBlocks);
                }
            }
            Integer at = placed.get(table);
            if (at == null) {
                at = length;
                placed.put(table, at);
                arrays.add(table);
                length += table.length;
            }
            tableAt[i] = at;
            int[] extra = rows.extraCount(r) == 0 ? null : rows.extra()[r];
            if (extra != null) {
                Integer e = placed.get(extra);
                if (e == null) {
                    e = length;
                    placed.put(extra, e);
                    arrays.add(extra);
                    length += extra.length;
                }
                extraAt[i] = e;
            }
        }
        int[] desc = new int[length];
        for (int i = 0; i < n; i++) {
            desc[4 * i] = tableAt[i];
            desc[4 * i + 1] = rows.prefix()[from + i];
            desc[4 * i + 2] = extraAt[i];
            desc[4 * i + 3] = rows.extraCount(from + i);
        }
        int at = 4 * n;
        for (int[] array : arrays) {
            System.arraycopy(array, 0, desc, at, array.length);
            at += array.length;
        }
        return desc;
    }

    /** For every i, slot {@code to[i]} of every layer takes what slot {@code from[i]} held (CudaKvStorage.copySlots). */
    synchronized void copySlots(CudaKvStorage cache, int[] from, int[] to) {
        enter();
        int count = from.length;
        long rowBytes = cache.slotBytes();
        long words = rowBytes / 4; // kvHeads · headDim · (4 or 2) bytes; checked even by CudaKvStorage
        long scratch = deviceMemory(rowBytes * count, "a KV copy");
        try {
            long[] a = stage(0, from, to);
            for (int layer = 0; layer < cache.layers(); layer++) {
                for (long base : new long[] {cache.keys(layer), cache.values(layer)}) {
                    launch("tandem_gather_rows_u32", count, 1, 256, new CudaLibrary.Args()
                            .pointer(scratch).pointer(base).pointer(a[0]).i32(count).i64(words));
                    launch("tandem_scatter_rows_u32", count, 1, 256, new CudaLibrary.Args()
                            .pointer(base).pointer(scratch).pointer(a[1]).i32(count).i64(words));
                }
            }
        } finally {
            release(scratch);
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // Random draws and sampling

    /**
     * One token per row of {@code logits} [rows, vocab], drawn on the device as {@code Sampler.sample} draws
     * for sampling parameters that set a temperature and nothing else: logits divided by {@code temperature}
     * in f32, weights e^(l − max) in double, u = {@link dev.tandem.runtime.rng.CounterRng#uniform}(seed,
     * streams[r], positions[r], SAMPLE, 0), the first id whose running sum of weights exceeds u · Σ w. The
     * running sums are associated differently from the CPU's (runs of ids per thread), so the token is the
     * CPU's except when u · Σ w falls within rounding of a boundary between two ids. Only the ids come back to
     * the host, not the logits.
     *
     * @throws IllegalArgumentException for a temperature that is not finite and positive, arrays that do not
     *                                  match the rows, a position outside [0, 2^32), a row holding NaN or
     *                                  +Infinity, or a row of only -Infinity
     */
    public int[] sampleWithTemperature(Tensor logits, float temperature, long seed, long[] streams, long[] positions) {
        return sampleWithTemperature(logits, temperature, seed, streams, positions, RngPurpose.SAMPLE, false);
    }

    @Override
    public synchronized int[] sampleWithTemperature(Tensor logits, float temperature, long seed, long[] streams, long[] positions,
                                                    RngPurpose purpose, boolean normalized) {
        requireF32(logits, "sampleWithTemperature");
        int vocab = (int) logits.dim(-1);
        int n = (int) (logits.numel() / Math.max(1, vocab));
        if (!(temperature > 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number > 0, but was " + temperature + ".");
        }
        if (streams.length != n || positions.length != n) {
            throw new IllegalArgumentException("sampleWithTemperature needs a stream and a position per row: " + n + " rows, "
                    + streams.length + " streams, " + positions.length + " positions");
        }
        for (long p : positions) {
            if (p < 0 || p >= 1L << 32) {
                throw new IllegalArgumentException("position must be in [0, 2^32), but was " + p + ".");
            }
        }
        if (n == 0) {
            return new int[0];
        }
        enter();
        long[] a = stage(4L * n, streams, positions);
        launch("tandem_sample_temperature_f32", n, 1, 256, new CudaLibrary.Args().pointer(a[2]).pointer(logits.deviceAddress())
                .i32(n).i32(vocab).f32(temperature).i64(seed).pointer(a[0]).pointer(a[1]).i32(purpose.ordinal()).i32(normalized ? 1 : 0));
        int[] tokens;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(4L * n, 4);
            copyToHost(host, a[2]);
            tokens = host.toArray(ValueLayout.JAVA_INT);
        }
        for (int r = 0; r < n; r++) {
            if (tokens[r] == -2) {
                throw new IllegalArgumentException("logits must be finite or -Infinity, but row " + r + " holds NaN or +Infinity.");
            }
            if (tokens[r] < 0) {
                throw new IllegalArgumentException("every logit of row " + r + " is -Infinity, so there is no token to choose.");
            }
        }
        return tokens;
    }

    @Override
    public synchronized ChainOutcome verifyChain(Tensor target, Tensor draft, int[] tokens, float temperature, long seed, long stream,
                                                 long position, boolean openEnded) {
        requireF32(target, "verifyChain");
        int n = tokens.length;
        int vocab = (int) target.dim(-1);
        if (n > MAX_VERIFY_DRAFT) {
            throw new IllegalArgumentException("the device verifies chains of at most " + MAX_VERIFY_DRAFT + " draft tokens, not " + n + ".");
        }
        int rowsP = openEnded ? n : n + 1;
        if (target.numel() != (long) rowsP * vocab) {
            throw new IllegalArgumentException("verifying " + n + " draft tokens needs " + rowsP + " target rows of " + vocab
                    + " logits, but the target tensor has " + target.numel() + " elements.");
        }
        if (draft != null) {
            requireF32(draft, "verifyChain");
            if (draft.numel() != (long) n * vocab || draft.dim(-1) != vocab) {
                throw new IllegalArgumentException("verifying " + n + " draft tokens needs " + n + " draft rows of " + vocab
                        + " logits, but the draft tensor has " + draft.numel() + " elements.");
            }
        }
        if (!(temperature > 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number > 0, but was " + temperature + ".");
        }
        if (position < 0 || position + n >= 1L << 32) {
            throw new IllegalArgumentException("positions must be in [0, 2^32), but the chain spans " + position + " to "
                    + (position + n) + ".");
        }
        for (int i = 0; i < n; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocab) {
                throw new IllegalArgumentException("draft[" + i + "] = " + tokens[i] + " is outside the vocabulary [0, " + vocab + ").");
            }
        }
        enter();
        long[] a = stage(8, tokens);
        launch("tandem_verify_chain_f32", 1, 1, 256, new CudaLibrary.Args().pointer(a[1]).pointer(target.deviceAddress())
                .pointer(draft == null ? 0 : draft.deviceAddress()).pointer(a[0]).i32(n).i32(vocab).f32(temperature).i64(seed)
                .i64(stream).i64(position).i32(openEnded ? 1 : 0));
        int[] out;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(8, 4);
            copyToHost(host, a[1]);
            out = host.toArray(ValueLayout.JAVA_INT);
        }
        String row = out[1] < rowsP ? "target row " + out[1] : "draft row " + (out[1] - rowsP);
        return switch (out[0]) {
            case -2 -> throw new IllegalArgumentException("logits must be finite or -Infinity, but " + row + " holds NaN or +Infinity.");
            case -1 -> throw new IllegalArgumentException("every logit of " + row + " is -Infinity, so there is no token to choose.");
            case -3 -> throw new IllegalArgumentException("q[" + out[1] + "][" + tokens[out[1]] + "] = 0, but draft[" + out[1] + "] = "
                    + tokens[out[1]] + " was drawn from q[" + out[1] + "], so it must be > 0.");
            default -> new ChainOutcome(out[0], out[1]);
        };
    }

    /** {@code CounterRng.uniform(seed, streams[i], positions[i], purpose, index)} for every i, drawn on the device. */
    synchronized double[] uniforms(long seed, long[] streams, long[] positions, dev.tandem.runtime.rng.RngPurpose purpose, int index) {
        int n = streams.length;
        if (positions.length != n) {
            throw new IllegalArgumentException("one position per stream, got " + n + " streams and " + positions.length + " positions");
        }
        if (n == 0) {
            return new double[0];
        }
        enter();
        long[] a = stage(8L * n, streams, positions);
        launch("tandem_uniform_f64", (n + 255) / 256, 1, 256, new CudaLibrary.Args().pointer(a[2]).i64(seed).pointer(a[0])
                .pointer(a[1]).i32(purpose.ordinal()).i32(index).i32(n));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(8L * n, 8);
            copyToHost(host, a[2]);
            return host.toArray(ValueLayout.JAVA_DOUBLE);
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // Rooflines

    /**
     * The device's memory bandwidth as a device-to-device copy of {@code bytes} bytes moves it: each pass
     * counts the bytes read and the bytes written ({@code 2 × bytes}) over the time from issuing the copy to
     * its end. That is the yardstick the GPU benchmarks set a decode's weight reads against (issue 14: decode
     * at batch 1 should reach 0.8 of it).
     */
    @Override
    public synchronized Roofline measureReadBandwidth(long bytes, int passes, Progress progress) {
        if (passes < 1) {
            throw new IllegalArgumentException("passes must be >= 1, got " + passes);
        }
        enter();
        long size = Math.max(16, bytes / 16 * 16);
        long from = deviceMemory(size, "the bandwidth probe");
        long to;
        try {
            to = deviceMemory(size, "the bandwidth probe");
        } catch (RuntimeException e) {
            release(from);
            throw e;
        }
        try {
            cuda.copyOnDevice(to, from, size); // untimed
            cuda.synchronize();
            double[] perSecond = new double[passes];
            for (int p = 0; p < passes; p++) {
                long t0 = System.nanoTime();
                cuda.copyOnDevice(to, from, size);
                cuda.synchronize();
                perSecond[p] = 2.0 * size / Math.max(1e-9, (System.nanoTime() - t0) / 1e9);
                progress.update(p + 1, passes);
            }
            return new Roofline(1, perSecond);
        } finally {
            release(from);
            release(to);
        }
    }

    @Override
    public synchronized Roofline measureMultiplyAddPeak(int passes, int millisPerPass) {
        if (passes < 1 || millisPerPass < 1) {
            throw new IllegalArgumentException("passes and millisPerPass must be >= 1, got " + passes + " and " + millisPerPass);
        }
        enter();
        int blocks = 1024, threads = 256;
        long sink = deviceMemory(4L * blocks * threads, "the multiply-add probe");
        try {
            int iterations = 64;
            long elapsed;
            while (true) {
                long t0 = System.nanoTime();
                launch("tandem_multiply_add_peak", blocks, 1, threads, new CudaLibrary.Args().pointer(sink).i32(iterations).f32(0.999f).f32(1e-3f));
                cuda.synchronize();
                elapsed = System.nanoTime() - t0;
                if (elapsed >= millisPerPass * 1_000_000L / 4 || iterations >= 1 << 26) {
                    break;
                }
                iterations *= 4;
            }
            iterations = (int) Math.max(1, Math.min(1 << 28, (double) iterations * millisPerPass * 1e6 / Math.max(1, elapsed)));
            double[] perSecond = new double[passes];
            for (int p = 0; p < passes; p++) {
                long t0 = System.nanoTime();
                launch("tandem_multiply_add_peak", blocks, 1, threads, new CudaLibrary.Args().pointer(sink).i32(iterations).f32(0.999f).f32(1e-3f));
                cuda.synchronize();
                perSecond[p] = 8.0 * iterations * blocks * threads / Math.max(1e-9, (System.nanoTime() - t0) / 1e9);
            }
            return new Roofline(1, perSecond);
        } finally {
            release(sink);
        }
    }

    /** Frees every tensor, weight and KV storage still held, unloads the kernels and releases the device's primary context; idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        enter();
        for (CudaKvStorage kv : new ArrayList<>(kvStorages)) {
            kv.close();
        }
        for (long a : allocations.values()) {
            release(a);
        }
        for (Tensor w : weights.values()) {
            release(w.deviceAddress());
        }
        if (staging != 0) {
            release(staging);
        }
        if (partialBuffer != 0) {
            release(partialBuffer);
        }
        allocations.clear();
        weights.clear();
        closed = true;
        cuda.unloadModule(module);
        cuda.releasePrimaryContext(0); // the retain of the constructor; the context lives on while others hold it
    }

    /** The library this backend drives. */
    CudaLibrary library() {
        return cuda;
    }
}
