package dev.tandem.runtime.kv;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Placement;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class HostKvStorageTest {

    private static final int LAYERS = 2, KV_HEADS = 2, HEAD_DIM = 4, BLOCK = 4, BLOCKS = 3;
    private static final int WIDTH = KV_HEADS * HEAD_DIM;

    private static float tag(int slot, int layer, int kv, int e) {
        return slot * 1000 + layer * 100 + kv * 10 + e;
    }

    private static void fill(HostKvStorage s) {
        for (int slot = 0; slot < BLOCKS * BLOCK; slot++) {
            for (int l = 0; l < LAYERS; l++) {
                for (int e = 0; e < WIDTH; e++) {
                    s.dtype().write(s.keys(l), (long) slot * WIDTH + e, tag(slot, l, 0, e));
                    s.dtype().write(s.values(l), (long) slot * WIDTH + e, tag(slot, l, 1, e));
                }
            }
        }
    }

    private static void assertSlotHolds(HostKvStorage s, int slot, int source) {
        for (int l = 0; l < LAYERS; l++) {
            for (int e = 0; e < WIDTH; e++) {
                float k = DType.F32 == s.dtype() ? tag(source, l, 0, e) : DType.bf16ToFloat(DType.floatToBf16(tag(source, l, 0, e)));
                float v = DType.F32 == s.dtype() ? tag(source, l, 1, e) : DType.bf16ToFloat(DType.floatToBf16(tag(source, l, 1, e)));
                assertEquals(k, s.dtype().read(s.keys(l), (long) slot * WIDTH + e), "K slot " + slot + " layer " + l);
                assertEquals(v, s.dtype().read(s.values(l), (long) slot * WIDTH + e), "V slot " + slot + " layer " + l);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void copiesReadEverySourceBeforeWritingAnyDestination(DType dtype) {
        try (HostKvStorage s = new HostKvStorage(LAYERS, KV_HEADS, HEAD_DIM, BLOCK, BLOCKS, dtype)) {
            fill(s);
            // A swap, a chain (5 → 6 → 7: 7 must get 6's old content) and a plain copy.
            s.copySlots(new int[] {0, 1, 5, 6, 11}, new int[] {1, 0, 6, 7, 2});
            assertSlotHolds(s, 0, 1);
            assertSlotHolds(s, 1, 0);
            assertSlotHolds(s, 6, 5);
            assertSlotHolds(s, 7, 6);
            assertSlotHolds(s, 2, 11);
            assertSlotHolds(s, 5, 5);
            assertSlotHolds(s, 11, 11);
            assertEquals(Placement.HOST, s.placement());
        }
    }

    @Test
    void refusesSlotsOutOfRangeAndMismatchedArrays() {
        try (HostKvStorage s = new HostKvStorage(LAYERS, KV_HEADS, HEAD_DIM, BLOCK, BLOCKS, DType.F32)) {
            assertThrows(IllegalArgumentException.class, () -> s.copySlots(new int[] {0}, new int[] {BLOCKS * BLOCK}));
            assertThrows(IllegalArgumentException.class, () -> s.copySlots(new int[] {-1}, new int[] {0}));
            assertThrows(IllegalArgumentException.class, () -> s.copySlots(new int[] {0, 1}, new int[] {2}));
        }
    }

    @Test
    void closedStorageRefusesUse() {
        HostKvStorage s = new HostKvStorage(LAYERS, KV_HEADS, HEAD_DIM, BLOCK, BLOCKS, DType.F32);
        s.close();
        s.close();
        assertThrows(IllegalStateException.class, () -> s.keys(0));
        assertThrows(IllegalStateException.class, () -> s.copySlots(new int[] {0}, new int[] {1}));
    }
}
