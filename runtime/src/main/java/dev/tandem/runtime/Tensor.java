package dev.tandem.runtime;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A dense row-major array: shape, element type, and the memory holding it with its {@link Placement}. A
 * quantized tensor ({@link DType#isQuantized()}) has rows of whole blocks; its element accessors decode.
 * Host memory is a {@link MemorySegment} (memory-mapped weights, native activations); device memory is
 * an address only the backend that allocated it can use ({@link #segment()} refuses it, and so does
 * every element accessor). A tensor never owns its memory: whoever allocated it (an {@link Arena}, a
 * mapped file, a {@link Backend}) frees it.
 */
public final class Tensor {
    private final DType dtype;
    private final long[] shape;
    private final MemorySegment segment; // host memory, or null on a device
    private final long deviceAddress;    // device memory, or 0 on the host
    private final long numel;

    private Tensor(DType dtype, MemorySegment segment, long[] shape) {
        this(dtype, segment, 0, shape);
    }

    private Tensor(DType dtype, MemorySegment segment, long deviceAddress, long[] shape) {
        this.dtype = dtype;
        this.shape = shape.clone();
        this.segment = segment;
        this.deviceAddress = deviceAddress;
        long n = elementCount(shape);
        this.numel = n;
        long need = dtype.bytesFor(n);
        if (segment != null && segment.byteSize() < need) {
            throw new IllegalArgumentException("segment of " + segment.byteSize() + " bytes is too small for "
                    + dtype + Arrays.toString(shape) + " (" + need + " bytes)");
        }
    }

    /**
     * The number of elements of {@code shape}.
     *
     * @throws IllegalArgumentException for a negative dimension
     * @throws ArithmeticException      when the count does not fit in a long
     */
    public static long elementCount(long... shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** Views {@code segment} (little-endian) as a tensor; the segment must hold at least the elements. */
    public static Tensor of(DType dtype, MemorySegment segment, long... shape) {
        return new Tensor(dtype, segment, shape);
    }

    /** Allocates a zero-filled tensor in {@code arena}, 64-byte aligned. */
    public static Tensor allocate(Arena arena, DType dtype, long... shape) {
        long n = elementCount(shape);
        MemorySegment seg = arena.allocate(Math.max(1, dtype.bytesFor(n)), 64);
        return new Tensor(dtype, seg, shape);
    }

    /**
     * A tensor at {@code address} in a device's memory (for the backend that allocated it; nothing
     * checks the address).
     */
    public static Tensor onDevice(DType dtype, long address, long... shape) {
        if (address == 0) {
            throw new IllegalArgumentException("a device tensor needs a non-zero address");
        }
        return new Tensor(dtype, null, address, shape);
    }

    /** A heap-backed f32 tensor over {@code data} (tests and small host-side buffers). */
    public static Tensor ofFloats(float[] data, long... shape) {
        return new Tensor(DType.F32, MemorySegment.ofArray(data), shape);
    }

    public DType dtype() {
        return dtype;
    }

    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long dim(int axis) {
        return shape[axis < 0 ? shape.length + axis : axis];
    }

    public long numel() {
        return numel;
    }

    /** Bytes of this tensor's elements (whole blocks for a quantized type). */
    public long byteSize() {
        return dtype.bytesFor(numel);
    }

    public Placement placement() {
        return segment != null ? Placement.HOST : Placement.DEVICE;
    }

    /**
     * The host memory of this tensor.
     *
     * @throws IllegalStateException for a device tensor (copy it through its backend instead)
     */
    public MemorySegment segment() {
        if (segment == null) {
            throw new IllegalStateException("tensor " + this + " lives in device memory; copy it to the host through its backend");
        }
        return segment;
    }

    /**
     * The device address of this tensor's first element.
     *
     * @throws IllegalStateException for a host tensor
     */
    public long deviceAddress() {
        if (segment != null) {
            throw new IllegalStateException("tensor " + this + " lives in host memory");
        }
        return deviceAddress;
    }

    public float getFloat(long index) {
        return dtype.read(segment(), index);
    }

    public void setFloat(long index, float value) {
        dtype.write(segment(), index, value);
    }

    /** The same placement, {@code bytes} bytes in, under {@code newShape}. */
    private Tensor slice(long offsetBytes, long[] newShape) {
        if (segment == null) {
            return new Tensor(dtype, null, deviceAddress + offsetBytes, newShape);
        }
        long n = 1;
        for (long d : newShape) {
            n = Math.multiplyExact(n, d);
        }
        return new Tensor(dtype, segment.asSlice(offsetBytes, dtype.bytesFor(n)), newShape);
    }

    /** Rows {@code [from, from + count)} along the first axis, sharing memory. */
    public Tensor rows(long from, long count) {
        long rowElems = numel / Math.max(1, shape[0]);
        if (from < 0 || count < 0 || from + count > shape[0]) {
            throw new IndexOutOfBoundsException("rows [" + from + ", " + (from + count) + ") of " + this);
        }
        long[] s = shape.clone();
        s[0] = count;
        return slice(dtype.bytesFor(from * rowElems), s);
    }

    /** The first elements of this tensor's memory viewed under {@code newShape} (a buffer reused at a smaller size). */
    public Tensor head(long... newShape) {
        long n = 1;
        for (long d : newShape) {
            n = Math.multiplyExact(n, d);
        }
        if (n > numel) {
            throw new IllegalArgumentException("cannot view " + Arrays.toString(shape) + " as the larger " + Arrays.toString(newShape));
        }
        return slice(0, newShape);
    }

    /** The same memory under another shape with the same element count. */
    public Tensor reshape(long... newShape) {
        Tensor t = new Tensor(dtype, segment, deviceAddress, newShape);
        if (t.numel != numel) {
            throw new IllegalArgumentException("cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
        }
        return t;
    }

    /** Copies all elements of a host tensor into a new float array (decoding bf16/f16). */
    public float[] toFloatArray() {
        if (numel > Integer.MAX_VALUE) {
            throw new IllegalStateException("tensor too large for a Java array: " + Arrays.toString(shape));
        }
        float[] out = new float[(int) numel];
        for (int i = 0; i < out.length; i++) {
            out[i] = getFloat(i);
        }
        return out;
    }

    @Override
    public String toString() {
        return dtype + Arrays.toString(shape);
    }
}
