package dev.tandem.runtime.quant;

import dev.tandem.runtime.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Quantizing into llama.cpp's block formats, against ggml's reference quantizers and hand-checked blocks. */
class QuantBlocksTest {
    private static final long SEED = Long.getLong("tandem.test.seed", 20261208L);

    private static byte[] quantize(DType type, float[] x) {
        MemorySegment seg = MemorySegment.ofArray(new byte[(int) type.bytesFor(x.length)]);
        QuantBlocks.quantize(type, x, 0, x.length, seg, 0);
        return seg.toArray(ValueLayout.JAVA_BYTE);
    }

    private static float[] dequantize(DType type, byte[] blocks, int count) {
        float[] out = new float[count];
        QuantBlocks.dequantize(type, MemorySegment.ofArray(blocks), 0, out, 0, count);
        return out;
    }

    @Test
    void q8_0BlockByHand() {
        // amax 127: d = 1 (f16 0x3c00), id = 1; C's roundf takes halves away from zero (Math.round would give -2).
        float[] x = new float[32];
        x[0] = 127f;
        x[1] = -2.5f;
        x[2] = 2.5f;
        x[3] = -0.5f;
        x[4] = 0.49999997f; // + 0.5 in float would round up to 1
        x[5] = -127f;
        byte[] b = quantize(DType.Q8_0, x);
        assertEquals(0x00, b[0] & 0xff);
        assertEquals(0x3c, b[1] & 0xff);
        assertArrayEquals(new byte[] {127, -3, 3, -1, 0, -127, 0}, java.util.Arrays.copyOfRange(b, 2, 9));

        // x_j = j − 16: amax 16, d = 16/127 = 0.12598425 → f16 0x3008 (0.1259765625); id = 1/d (the f32 d) = 7.9375.
        for (int j = 0; j < 32; j++) {
            x[j] = j - 16;
        }
        b = quantize(DType.Q8_0, x);
        assertEquals(0x3008, (b[0] & 0xff) | (b[1] & 0xff) << 8);
        assertEquals(-127, b[2]);         // −16 · 7.9375 = −127
        assertEquals(-119, b[3]);         // −15 · 7.9375 = −119.0625
        assertEquals(0, b[2 + 16]);       // 0
        assertEquals(8, b[2 + 17]);       // 1 · 7.9375 = 7.9375
        assertEquals(119, b[2 + 31]);     // 15 · 7.9375 = 119.0625
    }

    @Test
    void q4_0BlockByHand() {
        // The value of largest magnitude is −8: d = −8 / −8 = 1 (f16 0x3c00), q = min(15, (int) (x + 8.5)).
        float[] x = new float[32];
        x[0] = -8f;     // 0
        x[1] = 7f;      // 15
        x[2] = 7.6f;    // (int) 16.1 = 16 → 15
        x[3] = -0.6f;   // (int) 7.9 = 7
        x[4] = 0.5f;    // 9
        x[5] = -0.5f;   // 8
        x[16] = 8f;     // a tie in magnitude with x[0]: the first wins; (int) 16.5 → 15
        x[17] = 3f;     // 11
        byte[] b = quantize(DType.Q4_0, x);
        assertEquals(0x3c00, (b[0] & 0xff) | (b[1] & 0xff) << 8);
        int[] lo = {0, 15, 15, 7, 9, 8}, hi = {15, 11, 8, 8, 8, 8};
        for (int j = 0; j < 6; j++) {
            assertEquals(lo[j] | hi[j] << 4, b[2 + j] & 0xff, "byte " + j);
        }
        // Largest magnitude positive: d = 8 / −8 = −1, so q = 8 − x.
        x = new float[32];
        x[0] = 8f;      // (int) (−8 + 8.5) = 0
        x[1] = -8f;     // (int) 16.5 = 16 → 15
        x[2] = 1f;      // 7
        b = quantize(DType.Q4_0, x);
        assertEquals(0xbc00, (b[0] & 0xff) | (b[1] & 0xff) << 8);
        assertEquals(0 | 8 << 4, b[2] & 0xff);
        assertEquals(15 | 8 << 4, b[3] & 0xff);
        assertEquals(7 | 8 << 4, b[4] & 0xff);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void quantizesAsGgmlsReferenceQuantizerBitForBit(DType type) throws IOException {
        // ggml-quantize-ref.txt: rows written by ggml's quantize_row_*_ref (ggml-quantize-ref.c beside it says how).
        List<float[]> rows = new ArrayList<>();
        List<byte[]> blocks = new ArrayList<>();
        try (InputStream in = getClass().getResourceAsStream("/quant/ggml-quantize-ref.txt")) {
            for (String line : new String(in.readAllBytes(), StandardCharsets.US_ASCII).split("\n")) {
                String[] f = line.trim().split(" ");
                if (f[0].equals("X")) {
                    float[] x = new float[f.length - 1];
                    for (int i = 0; i < x.length; i++) {
                        x[i] = Float.intBitsToFloat(Integer.parseUnsignedInt(f[i + 1], 16));
                    }
                    rows.add(x);
                } else if (f[0].equals(type.name())) {
                    byte[] b = new byte[f.length - 1];
                    for (int i = 0; i < b.length; i++) {
                        b[i] = (byte) Integer.parseInt(f[i + 1], 16);
                    }
                    blocks.add(b);
                }
            }
        }
        assertEquals(4, rows.size());
        assertEquals(rows.size(), blocks.size());
        for (int r = 0; r < rows.size(); r++) {
            byte[] got = quantize(type, rows.get(r));
            assertEquals(HexFormat.of().formatHex(blocks.get(r)), HexFormat.of().formatHex(got), type + " row " + r);
        }
    }

    /**
     * Relative RMS error of each block's round trip, worst over many random blocks: what each format is expected to
     * hold (uniform values; ggml's own figures for these formats are of the same order).
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void roundTripErrorIsWithinTheFormatsBound(DType type) {
        double bound = switch (type) {
            case Q8_0 -> 0.012;
            case Q4_0 -> 0.16;
            case Q4_K -> 0.13;
            case Q6_K -> 0.04;
            default -> throw new AssertionError(type);
        };
        SplittableRandom rnd = new SplittableRandom(SEED);
        int per = type.blockElements();
        int blocks = 64;
        for (String kind : new String[] {"uniform", "gaussian", "offset", "tiny", "outlier"}) {
            float[] x = new float[blocks * per];
            for (int i = 0; i < x.length; i++) {
                x[i] = switch (kind) {
                    case "uniform" -> (float) (rnd.nextDouble() * 2 - 1);
                    case "gaussian" -> (float) gaussian(rnd);
                    case "offset" -> (float) (3 + rnd.nextDouble());
                    case "tiny" -> (float) (1e-2 * gaussian(rnd)); // Q6_K's d is then an f16 subnormal
                    default -> (float) (gaussian(rnd) * (i % 97 == 0 ? 20 : 1));
                };
            }
            float[] y = dequantize(type, quantize(type, x), x.length);
            double worst = 0;
            for (int b = 0; b < blocks; b++) {
                double err = 0, norm = 0;
                for (int j = b * per; j < (b + 1) * per; j++) {
                    err += (x[j] - (double) y[j]) * (x[j] - (double) y[j]);
                    norm += (double) x[j] * x[j];
                }
                worst = Math.max(worst, Math.sqrt(err / norm));
            }
            // Offset blocks are hard for the symmetric formats (their scale spans [−4, 4] for values in [3, 4]), and a
            // block with a 20× outlier spends its levels on it.
            double allowed = kind.equals("offset") && type != DType.Q4_K || kind.equals("outlier") ? 2 * bound : bound;
            assertTrue(worst <= allowed, type + " " + kind + ": worst block relative RMS error " + worst + " > " + allowed);
        }
    }

    private static double gaussian(SplittableRandom rnd) {
        return Math.sqrt(-2 * Math.log(1 - rnd.nextDouble())) * Math.cos(2 * Math.PI * rnd.nextDouble());
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void zerosAndConstantsRoundTrip(DType type) {
        int per = type.blockElements();
        for (float v : dequantize(type, quantize(type, new float[per]), per)) {
            assertEquals(0f, v, 0f, type.toString()); // −0 where d is −0 (Q4_0: 0 / −8), as ggml
        }
        float[] ones = new float[per];
        java.util.Arrays.fill(ones, -1f); // exact in every format (a power of two scale, or d·q with q at an end)
        float[] back = dequantize(type, quantize(type, ones), per);
        for (float v : back) {
            assertEquals(-1f, v, 1e-3f, type.toString());
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void nanInfinityAndUnrepresentableScalesAreRefusedInOneSentence(DType type) {
        int per = type.blockElements();
        MemorySegment dst = Arena.ofAuto().allocate(type.bytesFor(2L * per));
        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            float[] x = new float[2 * per];
            x[per + 3] = bad;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> QuantBlocks.quantize(type, x, 0, x.length, dst, 0));
            assertEquals("cannot quantize value " + (per + 3) + " (" + bad + ") to " + type.lowerName()
                    + ": block formats hold finite values only", e.getMessage());
        }
        float[] huge = new float[per];
        huge[1] = 3e38f;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantBlocks.quantize(type, huge, 0, per, dst, 0));
        assertTrue(e.getMessage().contains("needs a scale beyond f16's range"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> QuantBlocks.quantize(type, new float[per + 1], 0, per + 1, dst, 0));
        assertThrows(IllegalArgumentException.class,
                () -> QuantBlocks.quantize(DType.BF16, new float[per], 0, per, dst, 0));
    }

    @Test
    void quantizesAtOffsetsOfSourceAndDestination() {
        SplittableRandom rnd = new SplittableRandom(SEED + 1);
        for (DType type : new DType[] {DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q6_K}) {
            int per = type.blockElements();
            float[] x = new float[3 * per + 5];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) gaussian(rnd);
            }
            float[] middle = java.util.Arrays.copyOfRange(x, 5 + per, 5 + 2 * per);
            MemorySegment dst = MemorySegment.ofArray(new byte[(int) type.bytesFor(3L * per) + 7]);
            QuantBlocks.quantize(type, x, 5, 3 * per, dst, 7);
            byte[] alone = quantize(type, middle);
            byte[] placed = dst.asSlice(7 + type.blockBytes(), type.blockBytes()).toArray(ValueLayout.JAVA_BYTE);
            assertArrayEquals(alone, placed, type.toString());
        }
    }
}
