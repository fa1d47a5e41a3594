package dev.tandem.runtime;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A dense row-major array: shape, element type and the memory holding it. On the CPU backend the
 * memory is a {@link MemorySegment} (memory-mapped weights, or native activations); a tensor never
 * owns its memory, whoever allocated the segment (an {@link Arena}, a mapped file) does.
 */
public final class Tensor {
    private final DType dtype;
    private final long[] shape;
    private final MemorySegment segment;
    private final long numel;

    private Tensor(DType dtype, MemorySegment segment, long[] shape) {
        this.dtype = dtype;
        this.shape = shape.clone();
        this.segment = segment;
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        this.numel = n;
        long need = Math.multiplyExact(n, (long) dtype.byteSize());
        if (segment.byteSize() < need) {
            throw new IllegalArgumentException("segment of " + segment.byteSize() + " bytes is too small for "
                    + dtype + Arrays.toString(shape) + " (" + need + " bytes)");
        }
    }

    /** Views {@code segment} (little-endian) as a tensor; the segment must hold at least the elements. */
    public static Tensor of(DType dtype, MemorySegment segment, long... shape) {
        return new Tensor(dtype, segment, shape);
    }

    /** Allocates a zero-filled tensor in {@code arena}, 64-byte aligned. */
    public static Tensor allocate(Arena arena, DType dtype, long... shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        MemorySegment seg = arena.allocate(Math.max(1, n * dtype.byteSize()), 64);
        return new Tensor(dtype, seg, shape);
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

    public long byteSize() {
        return numel * dtype.byteSize();
    }

    public MemorySegment segment() {
        return segment;
    }

    public float getFloat(long index) {
        return dtype.read(segment, index);
    }

    public void setFloat(long index, float value) {
        dtype.write(segment, index, value);
    }

    /** Rows {@code [from, from + count)} along the first axis, sharing memory. */
    public Tensor rows(long from, long count) {
        long rowElems = numel / Math.max(1, shape[0]);
        long[] s = shape.clone();
        s[0] = count;
        return new Tensor(dtype, segment.asSlice(from * rowElems * dtype.byteSize(), count * rowElems * dtype.byteSize()), s);
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
        return new Tensor(dtype, segment.asSlice(0, n * dtype.byteSize()), newShape);
    }

    /** The same memory under another shape with the same element count. */
    public Tensor reshape(long... newShape) {
        Tensor t = new Tensor(dtype, segment, newShape);
        if (t.numel != numel) {
            throw new IllegalArgumentException("cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
        }
        return t;
    }

    /** Copies all elements into a new float array (decoding bf16/f16). */
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
