package dev.tandem.transformer.onnx;

import com.google.protobuf.ByteString;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.onnx.proto.OnnxProto.TensorProto;
import dev.tandem.transformer.onnx.proto.OnnxProto.TensorProto.DataType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * One tensor of an ONNX file (an initializer, or a Constant node's value): name, element type, shape, and
 * its values, kept as the file holds them — {@code raw_data} (little-endian, as ONNX specifies) or one of
 * the typed fields — until asked for. The shape and the amount of data are checked when the model is read;
 * the element type when the values are asked for ({@link #floats()} and {@link #toTensor} want FLOAT,
 * {@link #longs()} an integer type). Data kept in an external file is refused when the model is read.
 */
public final class OnnxTensor {

    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final String source;
    private final String name;
    private final TensorProto proto;
    private final long[] dims;
    private final long count;

    /**
     * @param source the file's name, which every message starts with
     * @param what   "initializer \"W\"" or "the constant \"C\"": how messages name this tensor
     */
    OnnxTensor(String source, String name, String what, TensorProto proto) {
        this.source = source;
        this.name = name;
        this.proto = proto;
        this.dims = proto.getDimsList().stream().mapToLong(Long::longValue).toArray();
        String where = source + ": " + what;
        long n = 1;
        for (long d : dims) {
            if (d < 0) {
                throw new TandemException(where + " has shape " + Arrays.toString(dims) + ", with a negative dimension.");
            }
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new TandemException(where + " has shape " + Arrays.toString(dims) + ", too large to address.");
            }
        }
        this.count = n;
        if (proto.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
            throw new TandemException(where + " keeps its data in an external file, which Tandem does not read;"
                    + " save the model with its weights inside the .onnx file.");
        }
        checkDataAmount(where);
    }

    /** The amount of data must fit the shape; types whose size this reader does not know are left alone. */
    private void checkDataAmount(String where) {
        int type = proto.getDataType();
        int elementBytes = elementBytes(type);
        if (proto.hasRawData()) {
            if (elementBytes > 0 && proto.getRawData().size() != count * elementBytes) {
                throw new TandemException(where + " has " + proto.getRawData().size() + " bytes of data, but its shape "
                        + Arrays.toString(dims) + " of " + dataType() + " needs " + count * elementBytes + ".");
            }
            return;
        }
        long values = switch (typeOf(type)) {
            case FLOAT -> proto.getFloatDataCount();
            case COMPLEX64 -> proto.getFloatDataCount() / 2L;
            case DOUBLE -> proto.getDoubleDataCount();
            case COMPLEX128 -> proto.getDoubleDataCount() / 2L;
            case INT64 -> proto.getInt64DataCount();
            case UINT32, UINT64 -> proto.getUint64DataCount();
            case STRING -> proto.getStringDataCount();
            case INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16,
                 FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ -> proto.getInt32DataCount();
            case null, default -> count; // sub-byte and unknown types: packing rules vary, never read here
        };
        if (values != count) {
            throw new TandemException(where + " holds " + values + " values, but its shape " + Arrays.toString(dims)
                    + " has " + count + " elements.");
        }
    }

    private static DataType typeOf(int code) {
        return DataType.forNumber(code);
    }

    /** Bytes per element in {@code raw_data}, or 0 for types packed below a byte or unknown here. */
    private static int elementBytes(int code) {
        return switch (typeOf(code)) {
            case UINT8, INT8, BOOL, FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ -> 1;
            case UINT16, INT16, FLOAT16, BFLOAT16 -> 2;
            case FLOAT, INT32, UINT32 -> 4;
            case INT64, UINT64, DOUBLE, COMPLEX64 -> 8;
            case COMPLEX128 -> 16;
            case null, default -> 0;
        };
    }

    public String name() {
        return name;
    }

    /** ONNX's name of the element type: "FLOAT", "INT64", "FLOAT16", ... */
    public String dataType() {
        DataType t = typeOf(proto.getDataType());
        return t == null ? "type " + proto.getDataType() : t.name();
    }

    public boolean isFloat() {
        return proto.getDataType() == DataType.FLOAT_VALUE;
    }

    /** The shape; empty for a scalar. */
    public long[] dims() {
        return dims.clone();
    }

    public int rank() {
        return dims.length;
    }

    public long dim(int axis) {
        return dims[axis];
    }

    public long elementCount() {
        return count;
    }

    /**
     * The values of a FLOAT tensor, row-major.
     *
     * @throws TandemException when the tensor is of another type, or too large for one Java array
     */
    public float[] floats() {
        requireFloat();
        if (count > Integer.MAX_VALUE - 8) {
            throw new TandemException(source + ": \"" + name + "\" has " + count
                    + " elements, too many for one Java array.");
        }
        float[] out = new float[(int) count];
        if (proto.hasRawData()) {
            MemorySegment.copy(raw(), F32_LE, 0, out, 0, out.length);
        } else {
            for (int i = 0; i < out.length; i++) {
                out[i] = proto.getFloatData(i);
            }
        }
        return out;
    }

    /**
     * The values of an integer tensor (INT64, INT32, INT16, INT8, UINT8, UINT16, UINT32), widened to long:
     * what shape constants and axes are.
     *
     * @throws TandemException when the tensor is of another type
     */
    public long[] longs() {
        DataType t = typeOf(proto.getDataType());
        int bytes = t == null ? 0 : switch (t) {
            case INT64 -> 8;
            case INT32, UINT32 -> 4;
            case INT16, UINT16 -> 2;
            case INT8, UINT8 -> 1;
            default -> 0;
        };
        if (bytes == 0) {
            throw new TandemException(source + ": \"" + name + "\" is " + dataType() + ", not an integer tensor.");
        }
        boolean unsigned = t == DataType.UINT8 || t == DataType.UINT16 || t == DataType.UINT32;
        long[] out = new long[Math.toIntExact(count)];
        MemorySegment r = proto.hasRawData() ? raw() : null;
        for (int i = 0; i < out.length; i++) {
            long v;
            if (r == null) {
                v = t == DataType.INT64 ? proto.getInt64Data(i) : t == DataType.UINT32 ? proto.getUint64Data(i) : proto.getInt32Data(i);
            } else {
                v = switch (bytes) {
                    case 8 -> r.getAtIndex(I64_LE, i);
                    case 4 -> r.getAtIndex(I32_LE, i);
                    case 2 -> r.getAtIndex(I16_LE, i);
                    default -> r.get(ValueLayout.JAVA_BYTE, i);
                };
            }
            out[i] = !unsigned ? v : v & (bytes == 4 ? 0xffff_ffffL : bytes == 2 ? 0xffffL : 0xffL);
        }
        return out;
    }

    /**
     * A copy of this FLOAT tensor as an f32 {@link Tensor} of the same shape, in memory of {@code arena}.
     *
     * @throws TandemException when the tensor is of another type
     */
    public Tensor toTensor(Arena arena) {
        requireFloat();
        Tensor t = Tensor.allocate(arena, DType.F32, dims);
        copyFloatsTo(t.segment());
        return t;
    }

    /**
     * A copy of this FLOAT matrix transposed, as an f32 {@link Tensor} of shape {@code [cols, rows]}: an ONNX
     * MatMul weight {@code [in, out]} becomes the {@code [out, in]} of a PyTorch Linear.
     */
    Tensor toTransposedTensor(Arena arena) {
        requireFloat();
        if (dims.length != 2) {
            throw new IllegalStateException(name + " is not a matrix: " + Arrays.toString(dims));
        }
        long rows = dims[0];
        long cols = dims[1];
        Tensor t = Tensor.allocate(arena, DType.F32, cols, rows);
        MemorySegment dst = t.segment();
        MemorySegment src = floatSegment();
        for (long r = 0; r < rows; r++) {
            for (long c = 0; c < cols; c++) {
                dst.setAtIndex(F32, c * rows + r, src.getAtIndex(F32_LE, r * cols + c));
            }
        }
        return t;
    }

    private void copyFloatsTo(MemorySegment dst) {
        MemorySegment.copy(floatSegment(), F32_LE, 0, dst, F32, 0, count);
    }

    /** The little-endian f32 values: a view of {@code raw_data}, or the typed field copied to the heap. */
    private MemorySegment floatSegment() {
        if (proto.hasRawData()) {
            return raw();
        }
        float[] values = new float[(int) count];
        for (int i = 0; i < values.length; i++) {
            values[i] = proto.getFloatData(i);
        }
        MemorySegment heap = MemorySegment.ofArray(new byte[values.length * 4]);
        MemorySegment.copy(values, 0, heap, F32_LE, 0, values.length);
        return heap;
    }

    /** {@code raw_data} without a copy: a view of the mapped file when the model was read from one. */
    private MemorySegment raw() {
        ByteString bytes = proto.getRawData();
        return MemorySegment.ofBuffer(bytes.asReadOnlyByteBuffer());
    }

    private void requireFloat() {
        if (!isFloat()) {
            throw new TandemException(source + ": \"" + name + "\" is " + dataType()
                    + ", but Tandem reads only FLOAT (f32) weights.");
        }
    }

    @Override
    public String toString() {
        return name + ": " + dataType() + Arrays.toString(dims);
    }
}
