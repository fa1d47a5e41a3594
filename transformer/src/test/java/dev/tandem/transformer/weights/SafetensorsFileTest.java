package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static dev.tandem.transformer.weights.SafetensorsWriter.spec;
import static dev.tandem.transformer.weights.SafetensorsWriter.tensors;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafetensorsFileTest {

    @TempDir
    Path dir;

    private static final float[] SIX = {1.5f, -2.25f, 3.0f, 0.125f, -0.5f, 65504f};

    private Path valid() {
        Path f = dir.resolve("model.safetensors");
        SafetensorsWriter.write(f, tensors(
                "a.weight", spec(DType.F32, new long[] {2, 3}, SIX),
                "b.weight", spec(DType.BF16, new long[] {6}, SIX),
                "c.bias", spec(DType.F16, new long[] {3, 2}, SIX)), Map.of("format", "pt"));
        return f;
    }

    private Path raw(String header, int dataBytes) {
        Path f = dir.resolve("model.safetensors");
        SafetensorsWriter.writeRaw(f, header, new byte[dataBytes]);
        return f;
    }

    private static TandemException reject(Path file, String... parts) {
        TandemException e = assertThrows(TandemException.class, () -> SafetensorsFile.open(file));
        String m = e.getMessage();
        assertTrue(m.startsWith(file.getFileName() + ":"), () -> "message does not start with the file name: " + m);
        for (String p : parts) {
            assertTrue(m.contains(p), () -> "message lacks \"" + p + "\": " + m);
        }
        assertTrue(m.endsWith(".") && !m.contains("\n"), () -> "not one sentence: " + m);
        return e;
    }

    @Test
    void valuesRoundTripInEveryDtypeAsZeroCopyViews() {
        try (SafetensorsFile f = SafetensorsFile.open(valid())) {
            assertEquals(List.of("a.weight", "b.weight", "c.bias"), List.copyOf(f.names()));
            assertEquals(Map.of("format", "pt"), f.metadata());
            assertTrue(f.contains("c.bias"));
            assertFalse(f.contains("d"));

            Tensor a = f.tensor("a.weight");
            assertEquals(DType.F32, a.dtype());
            assertArrayEquals(new long[] {2, 3}, a.shape());
            assertArrayEquals(SIX, a.toFloatArray());
            assertTrue(a.segment().isNative() && a.segment().isReadOnly(), "a read-only view of the mapping");

            Tensor b = f.tensor("b.weight");
            assertEquals(DType.BF16, b.dtype());
            for (int i = 0; i < SIX.length; i++) {
                assertEquals(DType.bf16ToFloat(DType.floatToBf16(SIX[i])), b.getFloat(i));
            }
            Tensor c = f.tensor("c.bias");
            assertEquals(DType.F16, c.dtype());
            assertArrayEquals(new long[] {3, 2}, c.shape());
            assertArrayEquals(SIX, c.toFloatArray(), "all six values are exact in f16");

            SafetensorsFile.TensorInfo info = f.info("b.weight");
            assertEquals(new SafetensorsFile.TensorInfo("b.weight", DType.BF16, new long[] {6}, 24, 36), info);
        }
    }

    /** Issue 13: NaN weights surfaced as a logits invariant much later; now the load names the tensor and element. */
    @Test
    void aNonFiniteWeightIsRefusedAtLoadNamingTheTensorAndElement() {
        Object[][] cases = { // dtype, element count, bad element, bad value, what the sentence says
                {DType.F32, 9, 1, Float.NaN, "a NaN"},
                {DType.F32, 9, 8, Float.NEGATIVE_INFINITY, "an infinity"},
                {DType.BF16, 7, 5, Float.POSITIVE_INFINITY, "an infinity"},
                {DType.BF16, 12, 0, Float.NaN, "a NaN"},
                {DType.F16, 5, 4, Float.NEGATIVE_INFINITY, "an infinity"}};
        for (Object[] c : cases) {
            DType dtype = (DType) c[0];
            float[] values = new float[(int) c[1]];
            Arrays.fill(values, 0.25f);
            values[(int) c[2]] = (float) c[3];
            Path file = dir.resolve("bad-" + dtype + "-" + c[2] + ".safetensors");
            SafetensorsWriter.write(file, new java.util.LinkedHashMap<>(Map.of("fine", spec(DType.F32, new long[] {2}, 1f, 2f),
                    "layers.0.w", spec(dtype, new long[] {values.length}, values))));
            TandemException e = assertThrows(TandemException.class, () -> SafetensorsFile.open(file, true), dtype + " " + c[2]);
            assertEquals(file.getFileName() + ": tensor \"layers.0.w\" holds " + c[4] + " at element " + c[2]
                    + ", so the checkpoint is corrupt.", e.getMessage());
            // Memory-mapped weights are not read at load, so not checked (the copy is what reads them).
            SafetensorsFile.open(file, false).close();
        }
    }

    @Test
    void closeUnmapsTheFile() {
        SafetensorsFile f = SafetensorsFile.open(valid());
        MemorySegment seg = f.tensor("a.weight").segment();
        assertEquals(1.5f, seg.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 0));
        f.close();
        f.close(); // idempotent
        assertTrue(f.isClosed());
        assertThrows(IllegalStateException.class, () -> seg.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 0));
        assertThrows(IllegalStateException.class, () -> f.tensor("a.weight"));
    }

    @Test
    void fileShorterThanTheLengthFieldIsTruncated() throws IOException {
        Path f = dir.resolve("model.safetensors");
        Files.write(f, new byte[] {1, 2, 3});
        reject(f, "3 bytes", "truncated");
    }

    @Test
    void fileCutInsideTheHeaderIsTruncated() throws IOException {
        byte[] whole = Files.readAllBytes(valid());
        Path cut = dir.resolve("cut.safetensors");
        Files.write(cut, Arrays.copyOf(whole, 40));
        reject(cut, "header length", "runs past the end of the file (40 bytes)", "truncated");
    }

    @Test
    void fileCutInsideTheDataIsTruncated() throws IOException {
        byte[] whole = Files.readAllBytes(valid());
        Path cut = dir.resolve("cut.safetensors");
        Files.write(cut, Arrays.copyOf(whole, whole.length - 5));
        reject(cut, "tensor \"c.bias\"", "data_offsets [36, 48]", "run past the end of the data section (43 bytes)",
                "truncated");
    }

    @Test
    void headerThatIsNotJsonIsRejected() {
        reject(raw("{\"a\": {\"dtype\": \"F32\",", 0), "header is not valid JSON");
        reject(raw("[1, 2, 3]", 0), "header is not a JSON object");
        reject(raw("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "header is not valid JSON");
    }

    @Test
    void offsetsPastTheEndOfTheFileAreTruncation() {
        reject(raw("{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2250],\"data_offsets\":[0,9000]}}", 8192),
                "tensor \"model.norm.weight\" data_offsets [0, 9000] run past the end of the data section (8192 bytes)");
    }

    @Test
    void negativeOrReversedOffsetsAreRejected() {
        reject(raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8),
                "tensor \"w\"", "must not be negative");
        reject(raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8),
                "tensor \"w\"", "end before they begin");
    }

    @Test
    void overlappingTensorsAreRejected() {
        reject(raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                        + "\"y\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24),
                "tensors \"x\" [0, 16] and \"y\" [8, 24] overlap");
    }

    @Test
    void unknownDtypeIsNamedWithTheSupportedOnes() {
        reject(raw("{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4),
                "tensor \"w\"", "unknown dtype \"Q4_K\"", "F32, BF16, F16");
    }

    @Test
    void knownButUnsupportedDtypeIsRefusedOnlyWhenRead() {
        Path f = raw("{\"position_ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}", 20);
        try (SafetensorsFile s = SafetensorsFile.open(f)) {
            assertTrue(s.contains("position_ids"));
            assertEquals("I64", s.dtypeName("position_ids"));
            assertEquals(0.0f, s.tensor("w").getFloat(0));
            TandemException e = assertThrows(TandemException.class, () -> s.tensor("position_ids"));
            assertEquals("model.safetensors: tensor \"position_ids\" has dtype \"I64\", which Tandem does not "
                    + "support (supported: F32, BF16, F16).", e.getMessage());
        }
        // its span is still checked against its shape
        reject(raw("{\"p\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "tensor \"p\"", "16 bytes");
    }

    @Test
    void shapeTimesDtypeSizeMustEqualTheSpan() {
        reject(raw("{\"w\":{\"dtype\":\"BF16\",\"shape\":[3,4],\"data_offsets\":[0,48]}}", 48),
                "tensor \"w\"", "shape [3, 4] of BF16", "24 bytes", "data_offsets [0, 48] span 48 bytes");
    }

    @Test
    void malformedEntriesAreRejected() {
        reject(raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0), "tensor \"w\"", "shape");
        reject(raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4), "tensor \"w\"", "data_offsets");
        reject(raw("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "tensor \"w\"", "dtype");
        reject(raw("{\"__metadata__\":{\"n\":1}}", 0), "__metadata__");
    }

    @Test
    void missingFileAndMissingTensorAreReported() {
        Path absent = dir.resolve("nope.safetensors");
        TandemException e = assertThrows(TandemException.class, () -> SafetensorsFile.open(absent));
        assertEquals("safetensors file not found: " + absent + ".", e.getMessage());
        try (SafetensorsFile f = SafetensorsFile.open(valid())) {
            TandemException m = assertThrows(TandemException.class, () -> f.tensor("zzz"));
            assertEquals("model.safetensors: there is no tensor \"zzz\".", m.getMessage());
        }
    }

    @Test
    void emptyCheckpointAndZeroSizedTensorsAreValid() {
        try (SafetensorsFile f = SafetensorsFile.open(raw("{}", 0))) {
            assertTrue(f.names().isEmpty());
        }
        try (SafetensorsFile f = SafetensorsFile.open(raw(
                "{\"e\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[0,0]},"
                        + "\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4))) {
            assertEquals(0, f.tensor("e").numel());
            assertEquals(1, f.tensor("w").numel());
        }
    }
}
