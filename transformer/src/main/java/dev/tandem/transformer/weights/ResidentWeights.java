package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * The copy of a mapped file's tensors into memory of its own (safetensors and GGUF alike, docs/decisions.md): each tensor
 * at a 64-byte boundary of one allocation, f16 widened to f32 on the way (exact, so no kernel widens it on every call),
 * every float checked finite ({@link FiniteWeights}).
 */
final class ResidentWeights {

    /** A tensor's bytes: where they are ({@code offset}, {@code bytes}) and what they hold. */
    record Span(String name, DType dtype, long offset, long bytes) {
    }

    /** The copy, and each span where it now lies, in the order given. */
    record Copy(MemorySegment memory, List<Span> placed) {
    }

    private ResidentWeights() {
    }

    /**
     * @throws TandemException when the copy does not fit in memory, or a tensor holds a NaN or an infinity
     */
    static Copy of(Arena arena, MemorySegment data, List<Span> spans, String fileName) {
        List<Span> placed = new ArrayList<>(spans.size());
        long size = 0;
        for (Span s : spans) {
            boolean widen = s.dtype() == DType.F16;
            long bytes = s.bytes() * (widen ? 2 : 1);
            placed.add(new Span(s.name(), widen ? DType.F32 : s.dtype(), size, bytes));
            size += (bytes + 63) & ~63L;
        }
        MemorySegment copy;
        try {
            copy = arena.allocate(Math.max(1, size), 64);
        } catch (OutOfMemoryError e) {
            throw new TandemException(fileName + ": " + size + " bytes of memory for its weights could not be"
                    + " allocated; free memory, or keep the weights memory-mapped (--mmap).", e);
        }
        for (int i = 0; i < spans.size(); i++) {
            Span from = spans.get(i), to = placed.get(i);
            if (from.dtype() == DType.F16) {
                long count = from.bytes() / 2;
                for (long j = 0; j < count; j++) {
                    copy.set(ValueLayout.JAVA_FLOAT_UNALIGNED, to.offset() + 4 * j,
                            Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, from.offset() + 2 * j)));
                }
            } else {
                MemorySegment.copy(data, from.offset(), copy, to.offset(), from.bytes());
            }
            FiniteWeights.require(copy, to.offset(), to.bytes(), to.dtype(), fileName, to.name());
        }
        return new Copy(copy, List.copyOf(placed));
    }
}
