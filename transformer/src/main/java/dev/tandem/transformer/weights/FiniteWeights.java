package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The check of every weight copied into memory of its own (safetensors and GGUF alike). */
final class FiniteWeights {
    private FiniteWeights() {
    }

    /**
     * Refuses a tensor holding a NaN or an infinity, naming it and the element: such a checkpoint is
     * corrupt, and otherwise shows up much later as NaN logits. Cheap beside the copy it follows: eight
     * bytes at a time, testing the exponent bits of every value in them at once.
     */
    static void require(MemorySegment copy, long begin, long bytes, DType dtype, String fileName, String tensor) {
        if (dtype != DType.F32 && dtype != DType.BF16) {
            return; // f16 is widened to f32 before the check; block formats are not floats
        }
        int width = dtype == DType.F32 ? 4 : 2;
        long mask = width == 4 ? 0x7f800000_7f800000L : 0x7f80_7f80_7f80_7f80L;
        long whole = bytes & ~7L;
        for (long at = 0; at < whole; at += 8) {
            long v = copy.get(ValueLayout.JAVA_LONG_UNALIGNED, begin + at) & mask;
            if (v != 0 && anyLaneEquals(v, mask, width)) {
                reportNonFinite(copy, begin, at, Math.min(8, bytes - at), width, fileName, tensor);
            }
        }
        if (whole < bytes) {
            reportNonFinite(copy, begin, whole, bytes - whole, width, fileName, tensor);
        }
    }

    private static boolean anyLaneEquals(long masked, long mask, int width) {
        int lanes = 8 / width;
        long laneMask = width == 4 ? 0xffffffffL : 0xffffL;
        for (int i = 0; i < lanes; i++) {
            long shift = (long) i * width * 8;
            if (((masked >>> shift) & laneMask) == ((mask >>> shift) & laneMask)) {
                return true;
            }
        }
        return false;
    }

    /** Looks at each value of {@code [at, at + count)} and throws at the first that is not finite. */
    private static void reportNonFinite(MemorySegment copy, long begin, long at, long count, int width, String fileName,
                                        String tensor) {
        for (long b = at; b + width <= at + count; b += width) {
            float value = width == 4 ? copy.get(ValueLayout.JAVA_FLOAT_UNALIGNED, begin + b)
                    : Float.intBitsToFloat(copy.get(ValueLayout.JAVA_SHORT_UNALIGNED, begin + b) << 16);
            if (!Float.isFinite(value)) {
                throw new TandemException(fileName + ": tensor \"" + tensor + "\" holds " + (Float.isNaN(value) ? "a NaN" : "an infinity")
                        + " at element " + (b / width) + ", so the checkpoint is corrupt.");
            }
        }
    }

}
