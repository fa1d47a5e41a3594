package dev.tandem.runtime.kv;

import dev.tandem.runtime.TandemException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KvCacheTest {

    @Test
    void bytesPerBlockIsTwoTimesLayersHeadsDimsDtypeAndBlockSize() {
        try (KvCache cache = new KvCache(6, 4, 32, 16, 10)) {
            assertEquals(2L * 6 * 4 * 32 * 4 * 16, cache.bytesPerBlock());
        }
    }

    @Test
    void appendAllocatesBlocksAndTruncateReturnsThem() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 8)) {
            KvSequence a = cache.newSequence();
            int[] slots = a.append(6);
            assertEquals(2, cache.usedBlocks());
            assertEquals(6, a.length());
            for (int i = 0; i < 6; i++) {
                assertEquals(a.slot(i), slots[i]);
                assertEquals(i & 3, slots[i] & 3);
            }
            a.truncate(4);
            assertEquals(1, cache.usedBlocks());
            a.truncate(0);
            assertEquals(0, cache.usedBlocks());
            a.append(3);
            a.close();
            assertEquals(8, cache.freeBlocks());
        }
    }

    @Test
    void aFullCacheFailsWithoutChangingTheSequence() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 2)) {
            KvSequence a = cache.newSequence();
            a.append(5);
            TandemException e = assertThrows(TandemException.class, () -> a.append(4));
            assertTrue(e.getMessage().contains("KV cache is full"), e.getMessage());
            assertEquals(5, a.length());
            assertEquals(2, cache.usedBlocks());
            a.close();
            assertEquals(0, cache.usedBlocks());
        }
    }

    @Test
    void blockSizeMustBeAPowerOfTwo() {
        assertThrows(IllegalArgumentException.class, () -> new KvCache(1, 1, 4, 12, 2));
    }
}
