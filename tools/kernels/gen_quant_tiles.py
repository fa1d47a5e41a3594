#!/usr/bin/env python3
"""Writes runtime/src/main/java/dev/tandem/runtime/cpu/QuantTiles.java: the quantized-weight tiles of the CPU
backend, one method per format and tile shape, each with its accumulators in named locals (C2 keeps those in
registers; loops over arrays of vectors make it box). Run from the repository root:
    python3 tools/kernels/gen_quant_tiles.py
"""
import os

SHAPES = [(1, 8), (2, 4), (3, 4), (1, 1)]
FORMATS = ["Q8_0", "Q4_0", "Q4_K", "Q6_K"]


def load_x(rs, off):
    return [f"FloatVector u{r} = FloatVector.fromMemorySegment(F, x, x{r} + {off}, LE);" for r in range(rs)]


def fmas(rs, c):
    return " ".join(f"a{r}{c} = u{r}.fma(v{c}, a{r}{c});" for r in range(rs))


def body(fmt, R, C):
    o = []
    cols = range(C)
    if fmt == "Q8_0":
        o.append("for (int b = kFrom / 32, end = kTo / 32; b < end; b++) {")
        o.append("    long bo = 34L * b, xb = 128L * b;")
        for c in cols:
            o.append(f"    FloatVector d{c} = FloatVector.broadcast(F, Float.float16ToFloat(w.get(I16, w{c} + bo)));")
        o.append("    for (int j = 0; j < 32; j += L) {")
        o += ["        " + s for s in load_x(R, "xb + 4L * j")]
        for c in cols:
            o.append(f"        FloatVector v{c} = ((FloatVector) ByteVector.fromMemorySegment(B, w, w{c} + bo + 2 + j, LE)"
                     f".convertShape(VectorOperators.B2F, F, 0)).mul(d{c});")
            o.append("        " + fmas(R, c))
        o.append("    }")
        o.append("}")
    elif fmt == "Q4_0":
        o.append("for (int b = kFrom / 32, end = kTo / 32; b < end; b++) {")
        o.append("    long bo = 18L * b, xb = 128L * b;")
        for c in cols:
            o.append(f"    FloatVector d{c} = FloatVector.broadcast(F, Float.float16ToFloat(w.get(I16, w{c} + bo)));")
        for half, xo, op in ((0, "", ".and((byte) 0x0F)"), (1, "64 + ", ".lanewise(VectorOperators.LSHR, 4)")):
            o.append("    for (int j = 0; j < 16; j += L) {")
            o += ["        " + s for s in load_x(R, f"xb + {xo}4L * j")]
            for c in cols:
                o.append(f"        FloatVector v{c} = ((FloatVector) ByteVector.fromMemorySegment(B, w, w{c} + bo + 2 + j, LE){op}"
                         f".sub((byte) 8).convertShape(VectorOperators.B2F, F, 0)).mul(d{c});")
                o.append("        " + fmas(R, c))
            o.append("    }")
        o.append("}")
    elif fmt == "Q4_K":
        o.append("for (int b = kFrom / 256, end = kTo / 256; b < end; b++) {")
        o.append("    long bo = 144L * b, xb = 1024L * b;")
        for c in cols:
            o.append(f"    float dd{c} = Float.float16ToFloat(w.get(I16, w{c} + bo)), dm{c} = Float.float16ToFloat(w.get(I16, w{c} + bo + 2));")
        o.append("    for (int g = 0; g < 4; g++) {")
        o.append("        long qs = bo + 16 + 32L * g, xg = xb + 256L * g;")
        for sub, xo, op in ((0, "", ".and((byte) 0x0F)"), (1, "128 + ", ".lanewise(VectorOperators.LSHR, 4)")):
            o.append(f"        {{ // sub-block 2g + {sub}: the {'low' if sub == 0 else 'high'} nibbles")
            for c in cols:
                o.append(f"        FloatVector s{c} = FloatVector.broadcast(F, dd{c} * QuantBlocks.q4kScale(w, w{c} + bo + 4, 2 * g + {sub}));")
                o.append(f"        FloatVector m{c} = FloatVector.broadcast(F, dm{c} * QuantBlocks.q4kMin(w, w{c} + bo + 4, 2 * g + {sub}));")
            o.append("        for (int j = 0; j < 32; j += L) {")
            o += ["            " + s for s in load_x(R, f"xg + {xo}4L * j")]
            for c in cols:
                o.append(f"            FloatVector v{c} = ((FloatVector) ByteVector.fromMemorySegment(B, w, w{c} + qs + j, LE){op}"
                         f".convertShape(VectorOperators.B2F, F, 0)).mul(s{c}).sub(m{c});")
                o.append("            " + fmas(R, c))
            o.append("        }")
            o.append("        }")
        o.append("    }")
        o.append("}")
    elif fmt == "Q6_K":
        o.append("for (int b = kFrom / 256, end = kTo / 256; b < end; b++) {")
        o.append("    long bo = 210L * b, xb = 1024L * b;")
        for c in cols:
            o.append(f"    float dd{c} = Float.float16ToFloat(w.get(I16, w{c} + bo + 208));")
        o.append("    for (int n = 0; n < 2; n++) {")
        o.append("        long ql = bo + 64L * n, qh = bo + 128 + 32L * n, sc = bo + 192 + 8L * n, xn = xb + 512L * n;")
        for qt in range(4):
            lo_off = " + 32" if qt % 2 else ""
            lo_op = ".and((byte) 0x0F)" if qt < 2 else ".lanewise(VectorOperators.LSHR, 4)"
            hi_op = (".and((byte) 3)" if qt == 0 else f".lanewise(VectorOperators.LSHR, {2 * qt}).and((byte) 3)") \
                + ".lanewise(VectorOperators.LSHL, 4)"
            o.append(f"        for (int l = 0; l < 32; l += L) {{ // elements 32·{qt} + l of this half: scale l / 16 + {2 * qt}")
            o += ["            " + s for s in load_x(R, f"xn + {128 * qt} + 4L * l")]
            for c in cols:
                o.append(f"            FloatVector v{c} = ((FloatVector) ByteVector.fromMemorySegment(B, w, w{c} + ql + l{lo_off}, LE){lo_op}"
                         f".or(ByteVector.fromMemorySegment(B, w, w{c} + qh + l, LE){hi_op}).sub((byte) 32)"
                         f".convertShape(VectorOperators.B2F, F, 0)).mul(dd{c} * w.get(ValueLayout.JAVA_BYTE, w{c} + sc + l / 16 + {2 * qt}));")
                o.append("            " + fmas(R, c))
            o.append("        }")
        o.append("    }")
        o.append("}")
    return o


def method(fmt, R, C):
    name = f"tile{R}x{C}{fmt.replace('_', '')}"
    o = [f"private static void {name}(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,",
         "        int kFrom, int kTo, float[] lanes, int at, int c0) {"]
    for r in range(R):
        for c in range(C):
            o.append(f"    FloatVector a{r}{c} = FloatVector.fromArray(F, lanes, at + ({r * 8 + c} + c0) * L);")
    for c in range(C):
        o.append(f"    long w{c} = wOff + (c0 + {c}) * wStride;")
    for r in range(R):
        o.append(f"    long x{r} = xOff + {r} * xStride;")
    o += ["    " + s for s in body(fmt, R, C)]
    for r in range(R):
        for c in range(C):
            o.append(f"    a{r}{c}.intoArray(lanes, at + ({r * 8 + c} + c0) * L);")
    o.append("}")
    return ["    " + s for s in o]


def main():
    out = []
    out.append("""package dev.tandem.runtime.cpu;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.quant.QuantBlocks;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

// GENERATED by tools/kernels/gen_quant_tiles.py: edit that, then run it from the repository root.

/**
 * {@link VectorKernels}' tiles for weights in llama.cpp's block formats, read in place. Each weight is decoded in
 * registers to the float {@link QuantBlocks} gives it (Q8_0 d·q and Q4_0 d·(q − 8), both exact; Q4_K (d·sc)·q − dmin·m
 * and Q6_K (d·sc)·(q − 32), each product and difference rounded as the decoder rounds it), then goes into the
 * canonical f32 dot order ({@link Kernels}): a result equals {@code Kernels.dot} of the activation and the dequantized
 * row, bit for bit. A chunk of {@link #L} lanes never crosses a run of one scale (16 or 32 values), so this needs
 * 8 ≤ L ≤ 16 ({@link #SUPPORTED}); k ranges are whole blocks.
 *
 * <p>Tile shapes: 1 × 8 (decode: eight weight streams in flight), and 2 × 4 and 3 × 4 called twice for an 8-column
 * panel (3 × 8 accumulators plus eight columns' scales would not fit the 32 vector registers). Each accumulator visits
 * its chunks in index order, which is all the canonical order asks: which column goes first inside a chunk does not
 * matter.
 */
final class QuantTiles {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    /** Whether these tiles serve this platform's lane count (else the scalar kernels do, with the same bits). */
    static final boolean SUPPORTED = L >= 8 && L <= 16;
    /** L int8 values: 64 or 128 bits, widened to the L floats of one chunk. */
    private static final VectorSpecies<Byte> B = SUPPORTED ? VectorSpecies.of(byte.class, VectorShape.forBitSize(8 * L)) : null;

    private QuantTiles() {
    }

    private static void requireBlocks(DType wt, int kFrom, int kTo) {
        int per = wt.blockElements();
        if (kFrom % per != 0 || kTo % per != 0) {
            throw new IllegalArgumentException("a " + wt.lowerName() + " tile spans whole blocks of " + per + " values, not ["
                    + kFrom + ", " + kTo + ")");
        }
    }

    /** The full-chunk part of {@code rows × 8} dot products, as {@link Kernels#accumulateTile8}. */
    static void accumulate8(int rows, MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                            DType wt, int kFrom, int kTo, float[] lanes, int at) {
        requireBlocks(wt, kFrom, kTo);
        switch (rows) {
            case 1 -> tile(wt, 1, 8, x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, 0);
            case 2, 3 -> {
                tile(wt, rows, 4, x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, 0);
                tile(wt, rows, 4, x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, 4);
            }
            default -> throw new IllegalArgumentException("an 8-column tile has 1 to 3 rows, not " + rows);
        }
    }

    /** The lane accumulator of one dot product over [0, k) into {@code lanes[0 ... L)} (zeroed first). */
    static void accumulate1(MemorySegment x, long xOff, MemorySegment w, long wOff, DType wt, int k, float[] lanes) {
        requireBlocks(wt, 0, k);
        java.util.Arrays.fill(lanes, 0, L, 0f);
        tile(wt, 1, 1, x, xOff, 0, w, wOff, 0, 0, k, lanes, 0, 0);
    }

    private static void tile(DType wt, int rows, int cols, MemorySegment x, long xOff, long xStride, MemorySegment w,
                             long wOff, long wStride, int kFrom, int kTo, float[] lanes, int at, int c0) {
        switch (wt) {
""")
    for fmt in FORMATS:
        j = fmt.replace('_', '')
        out.append(f"            case {fmt} -> {{\n")
        out.append("                if (rows == 1 && cols == 8) {\n")
        out.append(f"                    tile1x8{j}(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, c0);\n")
        out.append("                } else if (rows == 2) {\n")
        out.append(f"                    tile2x4{j}(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, c0);\n")
        out.append("                } else if (rows == 3) {\n")
        out.append(f"                    tile3x4{j}(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, c0);\n")
        out.append("                } else {\n")
        out.append(f"                    tile1x1{j}(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, c0);\n")
        out.append("                }\n")
        out.append("            }\n")
    out.append("""            default -> throw new IllegalArgumentException(wt.lowerName() + " is not a block format");
        }
    }
""")
    for fmt in FORMATS:
        for R, C in SHAPES:
            out.append("\n")
            out.append("\n".join(method(fmt, R, C)) + "\n")
    out.append("}\n")
    path = os.path.join("runtime", "src", "main", "java", "dev", "tandem", "runtime", "cpu", "QuantTiles.java")
    with open(path, "w") as f:
        f.write("".join(out))


if __name__ == "__main__":
    main()
