package dev.tandem.runtime.cpu;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Placement;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.HostKvStorage;
import dev.tandem.runtime.kv.KvStorage;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The memory half of the Backend contract on the CPU: allocation, the host copy ops, KV storage. */
class CpuBackendMemoryTest {

    @Test
    void allocatesZeroedTensorsAndFreesEachOnce() {
        try (CpuBackend b = new CpuBackend(2)) {
            assertEquals(Placement.HOST, b.placement());
            Tensor t = b.allocate(3, 5);
            assertEquals(DType.F32, t.dtype());
            assertEquals(Placement.HOST, t.placement());
            for (long i = 0; i < t.numel(); i++) {
                assertEquals(0f, t.getFloat(i));
            }
            Tensor h = b.allocate(DType.BF16, 4);
            assertEquals(DType.BF16, h.dtype());
            b.free(t);
            assertThrows(IllegalStateException.class, () -> t.getFloat(0), "freed memory is not readable");
            assertThrows(IllegalArgumentException.class, () -> b.free(t));
            assertThrows(IllegalArgumentException.class, () -> b.free(Tensor.ofFloats(new float[2], 2)));
            assertThrows(IllegalArgumentException.class, () -> b.free(h.head(2)), "a view is not the allocation");
        }
    }

    @Test
    void closingFreesWhatIsLeft() {
        CpuBackend b = new CpuBackend(1);
        Tensor t = b.allocate(2, 2);
        b.close();
        assertThrows(IllegalStateException.class, () -> t.getFloat(0));
        b.free(t); // harmless after close
        assertThrows(IllegalStateException.class, () -> b.allocate(1));
    }

    @Test
    void gatherReadAndWriteRowsMoveExactlyTheRowsAsked() {
        try (CpuBackend b = new CpuBackend(2)) {
            Tensor src = b.allocate(4, 3);
            b.writeRows(new float[][] {{1, 2, 3}, {4, 5, 6}}, src, 1);
            b.writeRows(new float[][] {{7, 8, 9}}, src, 3);
            float[][] all = b.readRows(src, 0, 4);
            assertArrayEquals(new float[] {0, 0, 0}, all[0]);
            assertArrayEquals(new float[] {1, 2, 3}, all[1]);
            assertArrayEquals(new float[] {4, 5, 6}, all[2]);
            assertArrayEquals(new float[] {7, 8, 9}, all[3]);
            Tensor dst = b.allocate(3, 3);
            b.gatherRows(src, new int[] {3, 1, 3}, dst);
            float[][] got = b.readRows(dst, 0, 3);
            assertArrayEquals(new float[] {7, 8, 9}, got[0]);
            assertArrayEquals(new float[] {1, 2, 3}, got[1]);
            assertArrayEquals(new float[] {7, 8, 9}, got[2]);
            assertArrayEquals(new float[][] {{1, 2, 3}}, b.readRows(src, 1, 1));
            assertThrows(IllegalArgumentException.class, () -> b.writeRows(new float[][] {{1, 2}}, src, 0));
            assertThrows(IndexOutOfBoundsException.class, () -> b.writeRows(new float[][] {{1, 2, 3}}, src, 4));
            assertThrows(IndexOutOfBoundsException.class, () -> b.gatherRows(src, new int[] {4}, dst));
            assertThrows(IllegalArgumentException.class, () -> b.gatherRows(src, new int[] {0}, b.allocate(1, 2)));
            assertThrows(IndexOutOfBoundsException.class, () -> b.readRows(src, 3, 2));
        }
    }

    @Test
    void weightsStayWhereTheyAreAndDeviceTensorsAreRefused() {
        try (CpuBackend b = new CpuBackend(1)) {
            Tensor w = Tensor.ofFloats(new float[] {1, 2, 3, 4}, 2, 2);
            assertEquals(w, b.loadWeight(w));
            Tensor device = Tensor.onDevice(DType.F32, 0x1000, 2, 2);
            assertThrows(IllegalArgumentException.class, () -> b.loadWeight(device));
        }
    }

    @Test
    void kvStorageIsHostMemoryOfTheAskedShape() {
        try (CpuBackend b = new CpuBackend(1); KvStorage kv = b.allocateKv(3, 2, 8, 16, 5, DType.BF16)) {
            HostKvStorage host = assertInstanceOf(HostKvStorage.class, kv);
            assertEquals(Placement.HOST, kv.placement());
            assertEquals(5L * 16 * 2 * 8 * 2, host.keys(2).byteSize());
            assertEquals(DType.BF16, kv.dtype());
        }
    }

    @Test
    void deviceTensorsKeepTheirAddressArithmeticAndRefuseHostAccess() {
        Tensor d = Tensor.onDevice(DType.BF16, 0x10000, 4, 8);
        assertEquals(Placement.DEVICE, d.placement());
        assertEquals(0x10000 + 2L * 8 * 2, d.rows(2, 2).deviceAddress());
        assertEquals(0x10000, d.head(2, 8).deviceAddress());
        assertEquals(Placement.DEVICE, d.reshape(32).placement());
        assertThrows(IllegalStateException.class, d::segment);
        assertThrows(IllegalStateException.class, () -> d.getFloat(0));
        assertThrows(IllegalStateException.class, () -> Tensor.ofFloats(new float[1], 1).deviceAddress());
        assertThrows(IllegalArgumentException.class, () -> Tensor.onDevice(DType.F32, 0, 1));
    }
}
