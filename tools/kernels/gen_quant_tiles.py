#!/usr/bin/env python3
"""Writes runtime/src/main/java/dev/tandem/runtime/cpu/QuantTiles.java: the quantized-weight tiles of the CPU
backend, one method per format and tile shape, each with its accumulators in named locals (C2 keeps those in
registers; loops over arrays of vectors make it box). Run from the repository root:
    python3 tools/kernels/gen_quant_tiles.py
"""
import os

SHAPES = [(1, 4), (2, 4), (3, 4), (1, 1)]
FORMATS = ["Q8_0", "Q4_0", "Q4_K", "Q6_K"]


def load_x(rs, off):
    return [f"FloatVector u{r} = FloatVector.fromMemorySegment(F, x, x{r} + {off}, LE);" for r in range(rs)]


def fmas(rs, c):
    return " ".join(f"a{r}{c} = u{r}.fma(v{c}, a{r}{c});" for r in range(rs))


def body(fmt, R, C):
    o = []
    cols = range(C)
    if fmt in ("Q8_0", "Q4_0"):
        # The block scale factored out: p = Σ q·x over the block's chunks in lanes (q the integer-valued float of
        # the quant, q − 8 for Q4_0; p starts at zero, every step an fma), then acc = fma(p, d, acc) once per
        # block. One multiply-add per weight and two per block, against a multiply and a multiply-add per weight.
        size = 34 if fmt == "Q8_0" else 18
        o.append("FloatVector z = FloatVector.zero(F);")
        o.append("for (int b = kFrom / 32, end = kTo / 32; b < end; b++) {")
        o.append(f"    long bo = {size}L * b, xb = 128L * b;")
        for r in range(R):
            o.append("    " + " ".join(f"FloatVector p{r}{c} = z;" for c in cols))
        if fmt == "Q8_0":
            o.append("    for (int j = 0; j < 32; j += L) {")
            o += ["        " + s for s in load_x(R, "xb + 4L * j")]
            for c in cols:
                o.append(f"        FloatVector v{c} = (FloatVector) ByteVector.fromMemorySegment(B, w, w{c} + bo + 2 + j, LE)"
                         f".convertShape(VectorOperators.B2F, F, 0);")
                o.append("        " + " ".join(f"p{r}{c} = v{c}.fma(u{r}, p{r}{c});" for r in range(R)))
        else:
            o.append("    for (int i = 0; i < 32; i += L) { // values i ..: bytes i % 16 .., low nibbles below 16, high above")
            o.append("        int shift = 4 * (i >> 4), j = i & 15;")
            o += ["        " + s for s in load_x(R, "xb + 4L * i")]
            for c in cols:
                o.append(f"        FloatVector v{c} = (FloatVector) ((IntVector) ByteVector.fromMemorySegment(B, w, w{c} + bo + 2 + j, LE)"
                         f".convertShape(VectorOperators.B2I, I, 0)).lanewise(VectorOperators.LSHR, shift).and(0x0F).sub(8)"
                         f".convertShape(VectorOperators.I2F, F, 0);")
                o.append("        " + " ".join(f"p{r}{c} = v{c}.fma(u{r}, p{r}{c});" for r in range(R)))
        o.append("    }")
        for c in cols:
            o.append(f"    FloatVector d{c} = FloatVector.broadcast(F, Float.float16ToFloat(w.get(I16, w{c} + bo)));")
            o.append("    " + " ".join(f"a{r}{c} = p{r}{c}.fma(d{c}, a{r}{c});" for r in range(R)))
        o.append("}")
    elif fmt == "Q4_K":
        # One loop over the eight sub-blocks of 32 (low nibbles of a 32-byte run, then its high nibbles), the shift a
        # variable: one copy of the decode per column keeps the method within C1's and C2's budgets (written out
        # per sub-block, C2 stopped inlining at NodeCountInliningCutoff and boxed: 10× slower).
        o.append("for (int b = kFrom / 256, end = kTo / 256; b < end; b++) {")
        o.append("    long bo = 144L * b, xb = 1024L * b;")
        for c in cols:
            o.append(f"    float dd{c} = Float.float16ToFloat(w.get(I16, w{c} + bo)), dm{c} = Float.float16ToFloat(w.get(I16, w{c} + bo + 2));")
            o.append(f"    long sl{c} = w.get(I64, w{c} + bo + 4); int sh{c} = w.get(I32, w{c} + bo + 12);")
        o.append("    for (int sb = 0; sb < 8; sb++) {")
        o.append("        long qs = bo + 16 + 32L * (sb >> 1), xs = xb + 128L * sb;")
        o.append("        int shift = (sb & 1) * 4;")
        for c in cols:
            o.append(f"        FloatVector s{c} = FloatVector.broadcast(F, dd{c} * q4kScale(sl{c}, sh{c}, sb));")
            o.append(f"        FloatVector m{c} = FloatVector.broadcast(F, dm{c} * q4kMin(sl{c}, sh{c}, sb));")
        o.append("        for (int j = 0; j < 32; j += L) {")
        o += ["            " + s for s in load_x(R, "xs + 4L * j")]
        for c in cols:
            o.append(f"            FloatVector v{c} = ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(B, w, w{c} + qs + j, LE)"
                     f".convertShape(VectorOperators.B2I, I, 0)).lanewise(VectorOperators.LSHR, shift).and(0x0F)"
                     f".convertShape(VectorOperators.I2F, F, 0)).mul(s{c}).sub(m{c});")
            o.append("            " + fmas(R, c))
        o.append("        }")
        o.append("    }")
        o.append("}")
    elif fmt == "Q6_K":
        # Likewise one loop over the eight runs of 32 (two halves of four quarters), shifts and offsets variables.
        o.append("for (int b = kFrom / 256, end = kTo / 256; b < end; b++) {")
        o.append("    long bo = 210L * b, xb = 1024L * b;")
        for c in cols:
            o.append(f"    float dd{c} = Float.float16ToFloat(w.get(I16, w{c} + bo + 208));")
            o.append(f"    long sa{c} = w.get(I64, w{c} + bo + 192), sb{c} = w.get(I64, w{c} + bo + 200);")
        o.append("    for (int run = 0; run < 8; run++) {")
        o.append("        int n = run >> 2, qt = run & 3, loShift = (qt >> 1) * 4, hiShift = 2 * qt;")
        o.append("        long ql = bo + 64L * n + 32L * (qt & 1), qh = bo + 128 + 32L * n, xr = xb + 128L * run;")
        o.append("        for (int l = 0; l < 32; l += L) {")
        o += ["            " + s for s in load_x(R, "xr + 4L * l")]
        for c in cols:
            o.append(f"            FloatVector v{c} = ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(B, w, w{c} + ql + l, LE)"
                     f".convertShape(VectorOperators.B2I, I, 0)).lanewise(VectorOperators.LSHR, loShift).and(0x0F)"
                     f".or(((IntVector) ByteVector.fromMemorySegment(B, w, w{c} + qh + l, LE).convertShape(VectorOperators.B2I, I, 0))"
                     f".lanewise(VectorOperators.LSHR, hiShift).and(3).lanewise(VectorOperators.LSHL, 4))"
                     f".sub(32).convertShape(VectorOperators.I2F, F, 0)).mul(dd{c} * (byte) ((n == 0 ? sa{c} : sb{c}) >>> (8 * (2 * qt + l / 16))));")
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
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

// GENERATED by tools/kernels/gen_quant_tiles.py: edit that, then run it from the repository root.

/**
 * {@link VectorKernels}' tiles for weights in llama.cpp's block formats, read in place.
 *
 * <p>Q8_0 and Q4_0: the block scale is factored out. Per block of 32 and lane, p = Σ q·x over the block's chunks of
 * {@link #L} values in order, from zero, each step an fma (q the integer quant as a float: Q8_0's int8, Q4_0's nibble
 * − 8, both exact), then acc = fma(p, d, acc) with the block's scale d; lanes reduced by {@link Kernels}' halving tree.
 * A result is {@link ScalarKernels}' factored dot bit for bit (not the dot of the dequantized row: within 1e-5
 * normwise of it; docs/decisions.md). Q4_K and Q6_K: each weight is decoded in registers to the float
 * {@link QuantBlocks} gives it ((d·sc)·q − dmin·m and (d·sc)·(q − 32), each product and difference rounded as the
 * decoder rounds it), then goes into the canonical f32 dot order: a result equals {@code Kernels.dot} of the
 * activation and the dequantized row, bit for bit. A chunk of L lanes never crosses a run of one scale (16 or 32
 * values), so this needs 8 ≤ L ≤ 16 ({@link #SUPPORTED}); k ranges are whole blocks.
 *
 * <p>Tile shapes: for one activation row, Q8_0 and Q4_0 take one weight row after another (1 × 1: one stream from
 * memory, which streamed from DRAM faster than eight interleaved rows, bench/results/2026-12-07-epyc2-quant-factored.txt)
 * and the K-quants 1 × 4; 2 × 4 and 3 × 4 called twice for an 8-column panel (3 × 8 accumulators plus eight columns'
 * scales would not fit the 32 vector registers). Each accumulator visits its chunks in index order, so which column
 * goes first inside a chunk, and the tile shape, change no bit.
 */
final class QuantTiles {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    /** Whether these tiles serve this platform's lane count (else the scalar kernels do, with the same bits). */
    static final boolean SUPPORTED = L >= 8 && L <= 16;
    /** L int8 values: 64 or 128 bits, widened to the L floats of one chunk. */
    private static final VectorSpecies<Byte> B = SUPPORTED ? VectorSpecies.of(byte.class, VectorShape.forBitSize(8 * L)) : null;
    /**
     * L ints: nibbles and 2-bit fields are unpacked on int lanes (x86 has no byte shifts; C2 emulates them slowly),
     * after one sign-extending load of the bytes, and the masks drop the extension.
     */
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());

    private QuantTiles() {
    }

    /**
     * Sub-block j's 6-bit scale of a Q4_K block whose twelve scale bytes are {@code lo} (bytes 0-7) and {@code hi}
     * (8-11): {@link QuantBlocks#q4kScale} from two loads instead of a load per byte (fewer nodes for C2's budget).
     */
    static int q4kScale(long lo, int hi, int j) {
        return j < 4 ? (int) (lo >>> (8 * j)) & 63
                : (hi >>> (8 * (j - 4))) & 0xF | ((int) (lo >>> (8 * (j - 4))) & 0xFF) >>> 6 << 4;
    }

    /** Sub-block j's 6-bit min (see {@link #q4kScale(long, int, int)}). */
    static int q4kMin(long lo, int hi, int j) {
        return j < 4 ? (int) (lo >>> (8 * (j + 4))) & 63
                : ((hi >>> (8 * (j - 4))) & 0xFF) >>> 4 | ((int) (lo >>> (8 * j)) & 0xFF) >>> 6 << 4;
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
            case 1 -> {
                if (wt == DType.Q8_0 || wt == DType.Q4_0) {
                    // One weight row after another (one stream from memory): with the scale factored out a row's
                    // chain of dependent multiply-adds is one per block, so a single row keeps the core busy, and
                    // streaming from DRAM it ran 1.2-1.7x the 1 x 8 tile's eight interleaved streams (see the class
                    // comment). The bits are the same in any tile shape.
                    for (int c = 0; c < 8; c++) {
                        tile(wt, 1, 1, x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, c);
                    }
                } else {
                    // A K-quant 1 × 8 tile is more code than C1 can compile (out of virtual registers): the method
                    // would wait in the interpreter for C2, seconds on a busy machine. Two 1 × 4 halves compile.
                    tile(wt, 1, 4, x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, 0);
                    tile(wt, 1, 4, x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, 4);
                }
            }
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
        if fmt in ("Q4_K", "Q6_K"):
            out.append("                if (rows == 1 && cols == 4) {\n")
            out.append(f"                    tile1x4{j}(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at, c0);\n")
            out.append("                } else if (rows == 2) {\n")
        else:
            out.append("                if (rows == 2) {\n")
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
            if (R, C) == (1, 4) and fmt in ("Q8_0", "Q4_0"):
                continue
            out.append("\n")
            out.append("\n".join(method(fmt, R, C)) + "\n")
    out.append("}\n")
    path = os.path.join("runtime", "src", "main", "java", "dev", "tandem", "runtime", "cpu", "QuantTiles.java")
    with open(path, "w") as f:
        f.write("".join(out))


if __name__ == "__main__":
    main()
