package dev.tandem.runtime.kv;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KvCacheTest {

    // A row's content: element e of layer l, K (kv = 0) or V (kv = 1) of a row tagged `tag`; random
    // bits, so rows of different tags differ in bf16 too.
    static float value(int tag, int layer, int kv, int e) {
        long h = ((tag * 1_000_003L + layer) * 31 + kv) * 131 + e;
        return new SplittableRandom(h).nextFloat() * 4 - 2;
    }

    static void writeRow(KvCache cache, int slot, int tag) {
        int w = cache.slotWidth();
        for (int l = 0; l < cache.layers(); l++) {
            for (int e = 0; e < w; e++) {
                cache.dtype().write(((HostKvStorage) cache.storage()).keys(l), (long) slot * w + e, value(tag, l, 0, e));
                cache.dtype().write(((HostKvStorage) cache.storage()).values(l), (long) slot * w + e, value(tag, l, 1, e));
            }
        }
    }

    /** Checks that the sequence holds exactly the rows tagged {@code tags}. */
    static void assertTags(KvSequence seq, int... tags) {
        assertEquals(tags.length, seq.length(), "length");
        KvCache cache = seq.cache();
        int w = cache.slotWidth();
        for (int pos = 0; pos < tags.length; pos++) {
            int slot = seq.slot(pos);
            for (int l = 0; l < cache.layers(); l++) {
                for (int e = 0; e < w; e++) {
                    float k = cache.dtype().read(((HostKvStorage) cache.storage()).keys(l), (long) slot * w + e);
                    float v = cache.dtype().read(((HostKvStorage) cache.storage()).values(l), (long) slot * w + e);
                    assertEquals(round(cache.dtype(), value(tags[pos], l, 0, e)), k, "K of position " + pos);
                    assertEquals(round(cache.dtype(), value(tags[pos], l, 1, e)), v, "V of position " + pos);
                }
            }
        }
    }

    static float round(DType dtype, float x) {
        return dtype == DType.BF16 ? DType.bf16ToFloat(DType.floatToBf16(x)) : x;
    }

    /** Appends rows tagged {@code tags}, writing them through the returned slots. */
    static void append(KvSequence seq, int... tags) {
        int[] slots = seq.append(tags.length);
        for (int i = 0; i < tags.length; i++) {
            writeRow(seq.cache(), slots[i], tags[i]);
        }
    }

    static int[] range(int from, int to) {
        int[] r = new int[to - from];
        for (int i = 0; i < r.length; i++) {
            r[i] = from + i;
        }
        return r;
    }

    @Test
    void bytesPerBlockIsTwoTimesLayersHeadsDimsDtypeAndBlockSize() {
        try (KvCache cache = new KvCache(6, 4, 32, 16, 10)) {
            assertEquals(2L * 6 * 4 * 32 * 4 * 16, cache.bytesPerBlock());
            assertEquals(DType.F32, cache.dtype());
        }
        try (KvCache cache = new KvCache(6, 4, 32, 16, 10, DType.F32)) {
            assertEquals(2L * 6 * 4 * 32 * 4 * 16, cache.bytesPerBlock());
            assertEquals(10 * cache.bytesPerBlock(), cache.totalBytes());
        }
        try (KvCache cache = new KvCache(6, 4, 32, 16, 10, DType.BF16)) {
            assertEquals(2L * 6 * 4 * 32 * 2 * 16, cache.bytesPerBlock());
            assertEquals(DType.BF16, cache.dtype());
            // the storage really is that size: one layer's K segment is numBlocks × blockSize × slot bytes
            assertEquals(10L * 16 * 4 * 32 * 2, ((HostKvStorage) cache.storage()).keys(0).byteSize());
        }
    }

    @Test
    void onlyF32AndBf16AreKvDtypes() {
        assertThrows(IllegalArgumentException.class, () -> new KvCache(1, 1, 4, 4, 2, DType.F16));
        assertThrows(IllegalArgumentException.class, () -> KvCache.forBudget(1, 1, 4, 4, 1 << 20, DType.F16));
    }

    @Test
    void forBudgetTakesAsManyBlocksAsFit() {
        long perBlock = 2L * 2 * 2 * 8 * 2 * 16;
        try (KvCache cache = KvCache.forBudget(2, 2, 8, 16, 10 * perBlock + perBlock - 1, DType.BF16)) {
            assertEquals(perBlock, cache.bytesPerBlock());
            assertEquals(10, cache.numBlocks());
            assertEquals(10, cache.freeBlocks());
        }
        try (KvCache cache = KvCache.forBudget(2, 2, 8, 16, perBlock, DType.BF16)) {
            assertEquals(1, cache.numBlocks());
        }
        try (KvCache cache = KvCache.forBudget(2, 2, 8, 16, 3 * 2 * perBlock, DType.F32)) {
            assertEquals(3, cache.numBlocks());
        }
        TandemException e = assertThrows(TandemException.class,
                () -> KvCache.forBudget(2, 2, 8, 16, perBlock - 1, DType.BF16));
        assertTrue(e.getMessage().contains(String.valueOf(perBlock - 1)), e.getMessage());
        assertTrue(e.getMessage().contains(String.valueOf(perBlock)), e.getMessage());
    }

    @Test
    void forTokensRoundsUpToBlocks() {
        try (KvCache cache = KvCache.forTokens(1, 1, 4, 4, 9, DType.BF16)) {
            assertEquals(3, cache.numBlocks());
            assertEquals(DType.BF16, cache.dtype());
            assertEquals(3, cache.blocksNeeded(9));
            assertEquals(2, cache.blocksNeeded(8));
            assertEquals(0, cache.blocksNeeded(0));
        }
    }

    @Test
    void appendAllocatesBlocksAndTruncateReturnsThem() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 8)) {
            KvSequence a = cache.newSequence();
            int[] slots = a.append(6);
            assertEquals(2, cache.usedBlocks());
            assertEquals(2 * cache.bytesPerBlock(), cache.usedBytes());
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
            assertDoesNotThrow(a::close);
            assertEquals(8, cache.freeBlocks());
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void aFullCacheFailsWithoutChangingTheSequence(DType dtype) {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 2, dtype)) {
            KvSequence a = cache.newSequence();
            append(a, 1, 2, 3, 4, 5);
            int[] table = Arrays.copyOf(a.blockTable(), a.blockCount());
            TandemException e = assertThrows(TandemException.class, () -> a.append(4));
            assertTrue(e.getMessage().contains("KV cache is full"), e.getMessage());
            assertTrue(e.getMessage().contains("2 blocks of 4 tokens"), e.getMessage());
            assertTrue(e.getMessage().contains(cache.bytesPerBlock() + " bytes"), e.getMessage());
            assertEquals(5, a.length());
            assertArrayEquals(table, Arrays.copyOf(a.blockTable(), a.blockCount()));
            assertTags(a, new int[] {1, 2, 3, 4, 5});
            assertEquals(2, cache.usedBlocks());

            // copy-on-write that cannot get a block fails the same way, leaving both sequences alone
            KvSequence b = a.fork();
            assertThrows(TandemException.class, () -> b.append(1));
            assertThrows(TandemException.class, () -> b.compact(1, new int[] {4}));
            assertEquals(5, b.length());
            assertArrayEquals(table, Arrays.copyOf(b.blockTable(), b.blockCount()));
            assertTags(b, new int[] {1, 2, 3, 4, 5});
            b.close();
            a.close();
            assertEquals(0, cache.usedBlocks());
        }
    }

    @Test
    void blockSizeMustBeAPowerOfTwo() {
        assertThrows(IllegalArgumentException.class, () -> new KvCache(1, 1, 4, 12, 2));
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void appendAfterForkCopiesTheSharedLastBlock(DType dtype) {
        try (KvCache cache = new KvCache(2, 2, 4, 4, 16, dtype)) {
            KvSequence a = cache.newSequence();
            append(a, 1, 2, 3, 4, 5, 6);
            KvSequence b = a.fork();
            assertEquals(6, b.length());
            assertEquals(2, cache.usedBlocks());
            assertEquals(2, cache.refCount(a.blockTable()[1]));

            append(b, 70, 80);
            append(a, 7);
            assertTags(a, new int[] {1, 2, 3, 4, 5, 6, 7});
            assertTags(b, new int[] {1, 2, 3, 4, 5, 6, 70, 80});
            assertEquals(a.blockTable()[0], b.blockTable()[0], "the full first block stays shared");
            assertNotEquals(a.blockTable()[1], b.blockTable()[1]);
            assertEquals(3, cache.usedBlocks());

            // once b lets go, a is the only holder again and appends in place
            b.close();
            int before = a.blockTable()[1];
            append(a, 8);
            assertEquals(before, a.blockTable()[1]);
            assertTags(a, new int[] {1, 2, 3, 4, 5, 6, 7, 8});
            a.close();
            assertEquals(0, cache.usedBlocks());
        }
    }

    @Test
    void truncateOfASharedBlockOnlyDropsTheReference() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 16)) {
            KvSequence a = cache.newSequence();
            append(a, 1, 2, 3, 4, 5, 6, 7, 8, 9);
            KvSequence b = a.fork();
            b.truncate(2);
            assertEquals(3, cache.usedBlocks());
            append(b, 30, 40, 50);
            assertTags(b, new int[] {1, 2, 30, 40, 50});
            assertTags(a, new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9});
            a.close();
            b.close();
            assertEquals(0, cache.usedBlocks());
        }
    }

    /** The tag of every position of {@code seq} that is not padding, read back through its block table. */
    static void assertTagsAt(KvSequence seq, int[] positions, int... tags) {
        KvCache cache = seq.cache();
        int w = cache.slotWidth();
        for (int i = 0; i < positions.length; i++) {
            int slot = seq.slot(positions[i]);
            for (int e = 0; e < w; e++) {
                float k = cache.dtype().read(((HostKvStorage) cache.storage()).keys(0), (long) slot * w + e);
                assertEquals(round(cache.dtype(), value(tags[i], 0, 0, e)), k, "K of position " + positions[i]);
            }
        }
    }

    @Test
    void attachedSegmentsAreSharedReadOnlyAndFreedWithTheirLastHolder() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 32)) {
            KvSequence passageA = cache.newSequence();
            append(passageA, 11, 12, 13, 14, 15, 16);          // 2 blocks, the last half full
            KvSequence passageB = cache.newSequence();
            append(passageB, 21, 22, 23);                      // 1 block, partly full
            KvSequence question = cache.newSequence();
            append(question, 1);                               // a one-token prefix
            assertEquals(4, cache.usedBlocks());

            int startA = question.attach(passageA);
            int startB = question.attach(passageB);
            assertEquals(4, startA, "padded to the first block boundary");
            assertEquals(12, startB, "after passage A's two blocks");
            assertEquals(15, question.length());
            assertEquals(4, cache.usedBlocks(), "attaching takes no block");
            assertTagsAt(question, new int[] {0, 4, 5, 6, 7, 8, 9, 12, 13, 14}, 1, 11, 12, 13, 14, 15, 16, 21, 22, 23);

            // Appending right after B's partly filled, shared block copies it first: B never sees the write.
            append(question, 99);
            assertEquals(5, cache.usedBlocks());
            assertTags(passageB, 21, 22, 23);
            assertTagsAt(question, new int[] {12, 13, 14, 15}, 21, 22, 23, 99);
            // Padding to a block then appending takes a fresh block and copies nothing.
            assertEquals(16, question.padToBlock());
            append(question, 100);
            assertEquals(6, cache.usedBlocks());
            assertTagsAt(question, new int[] {16}, 100);

            // The passages' owners let go: their blocks stay while the question holds them.
            passageA.close();
            passageB.close();
            assertEquals(5, cache.usedBlocks(), "B's block was let go of by the question's copy-on-write");
            assertTagsAt(question, new int[] {4, 9}, 11, 16);
            question.close();
            assertEquals(0, cache.usedBlocks());
        }
    }

    @Test
    void aReservationThatCannotBeHadAsksTheReclaimersFirst() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 8)) {
            List<KvSequence> kept = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                KvSequence s = cache.newSequence();
                append(s, 1, 2, 3, 4, 5);                       // two blocks each
                kept.add(s);
            }
            List<Integer> asked = new ArrayList<>();
            KvCache.Reclaimer reclaimer = wanted -> {
                asked.add(wanted);
                while (cache.availableBlocks() < wanted && !kept.isEmpty()) {
                    kept.removeFirst().close();
                }
            };
            cache.addReclaimer(reclaimer);
            KvReservation small = cache.tryReserve(2);
            assertNotNull(small);
            assertEquals(List.of(), asked, "enough blocks: nobody is asked");
            small.close();
            KvReservation large = cache.reserve(5);
            assertEquals(List.of(5), asked);
            assertEquals(1, kept.size(), "two of the kept sequences were let go of, the third was not needed");
            large.close();
            cache.removeReclaimer(reclaimer);
            assertNull(cache.tryReserve(8), "without the reclaimer the kept blocks stay");
            assertThrows(TandemException.class, () -> cache.reserve(8));
        }
    }

    @Test
    void attachRefusesItselfAndOtherCaches() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 8); KvCache other = new KvCache(1, 1, 4, 4, 8)) {
            KvSequence a = cache.newSequence();
            append(a, 1, 2);
            assertThrows(IllegalArgumentException.class, () -> a.attach(a));
            KvSequence b = other.newSequence();
            append(b, 3);
            assertThrows(IllegalArgumentException.class, () -> a.attach(b));
            KvSequence closed = cache.newSequence();
            closed.close();
            assertThrows(IllegalStateException.class, () -> a.attach(closed));
            assertEquals(2, a.length(), "a refused attach changes nothing");
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void compactKeepsTheAcceptedPathOfATree(DType dtype) {
        try (KvCache cache = new KvCache(2, 1, 4, 4, 16, dtype)) {
            // prompt of 5 rows, then a tree of 7 nodes at positions 5..11; accepted path 5 → 7 → 10
            KvSequence seq = cache.newSequence();
            append(seq, range(1, 6));
            append(seq, 105, 106, 107, 108, 109, 110, 111);
            KvSequence other = seq.fork(); // someone else still sees the whole tree
            int before = cache.usedBlocks();
            seq.compact(5, new int[] {5, 7, 10});
            assertEquals(8, seq.length());
            assertTags(seq, new int[] {1, 2, 3, 4, 5, 105, 107, 110});
            assertTags(other, new int[] {1, 2, 3, 4, 5, 105, 106, 107, 108, 109, 110, 111});
            assertEquals(before + 1, cache.usedBlocks(), "one block copied on write, none freed (other holds them)");
            other.close();
            assertEquals(2, cache.usedBlocks());

            // alone now: compaction moves rows in place and frees the tail
            append(seq, 120, 121, 122, 123, 124);
            assertEquals(4, cache.usedBlocks());
            seq.compact(8, new int[] {9, 12});
            assertTags(seq, new int[] {1, 2, 3, 4, 5, 105, 107, 110, 121, 124});
            assertEquals(3, cache.usedBlocks());
            seq.compact(3, new int[] {});
            assertTags(seq, new int[] {1, 2, 3});
            assertEquals(1, cache.usedBlocks());
            assertThrows(IllegalArgumentException.class, () -> seq.compact(1, new int[] {2, 2}));
            assertThrows(IllegalArgumentException.class, () -> seq.compact(1, new int[] {0}));
            assertThrows(IllegalArgumentException.class, () -> seq.compact(1, new int[] {3}));
            seq.close();
            assertEquals(0, cache.usedBlocks());
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void sequencesWithACommonPrefixShareItsFullBlocks(DType dtype) {
        int k = 3;
        int[] prompt = range(100, 100 + 4 * k + 2); // k full blocks and two more tokens
        int[] independent;
        try (KvCache cache = new KvCache(2, 2, 4, 4, 32, dtype)) {
            KvSequence a = cache.newSequence();
            append(a, prompt);
            KvSequence b = cache.newSequence();
            append(b, prompt);
            independent = new int[] {cache.usedBlocks()};
            a.close();
            b.close();
        }
        try (KvCache cache = new KvCache(2, 2, 4, 4, 32, dtype)) {
            KvSequence a = cache.newSequence();
            append(a, prompt); // rows tagged by token: the KV of a token after this prefix
            a.publish(prompt);
            assertEquals(k, cache.publishedBlocks());
            KvSequence b = cache.newSequence();
            int attached = b.attachPrefix(prompt);
            assertEquals(4 * k, attached);
            assertEquals(attached, b.length());
            append(b, Arrays.copyOfRange(prompt, attached, prompt.length));
            assertEquals(independent[0] - k, cache.usedBlocks());
            assertTags(a, prompt);
            assertTags(b, prompt);

            // a longer prompt attaches the same blocks; a different one attaches only what it shares
            KvSequence c = cache.newSequence();
            int[] diverging = prompt.clone();
            diverging[5] = 7;
            assertEquals(4, c.attachPrefix(diverging));
            KvSequence d = cache.newSequence();
            assertEquals(0, d.attachPrefix(new int[] {100, 101, 102}), "no full block");
            c.close();
            d.close();

            // the index forgets a block when it is freed
            a.close();
            assertEquals(k, cache.publishedBlocks(), "b still holds the blocks");
            b.truncate(6); // cuts into block 1, held by b alone now
            assertEquals(1, cache.publishedBlocks());
            b.close();
            assertEquals(0, cache.publishedBlocks());
            assertEquals(0, cache.usedBlocks());
            KvSequence e = cache.newSequence();
            assertEquals(0, e.attachPrefix(prompt));
            e.close();
        }
    }

    @Test
    void aHashCollisionNeverAttachesOtherTokens() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 32)) {
            cache.prefixHasherForTesting((parent, tokens, from, to) -> 42L); // every block collides
            KvSequence a = cache.newSequence();
            int[] ta = {1, 2, 3, 4, 5, 6, 7, 8};
            append(a, ta);
            a.publish(ta);
            KvSequence b = cache.newSequence();
            int[] tb = {1, 2, 3, 9, 5, 6, 7, 8};
            append(b, tb);
            b.publish(tb);
            assertEquals(4, cache.publishedBlocks());

            KvSequence c = cache.newSequence();
            int[] tc = {9, 9, 9, 9, 5, 6, 7, 8};
            assertEquals(0, c.attachPrefix(tc), "same hash, other tokens");
            // the second block of b has a's second block's tokens, but a different parent
            KvSequence d = cache.newSequence();
            assertEquals(8, d.attachPrefix(tb));
            assertTags(d, tb);
            KvSequence e = cache.newSequence();
            assertEquals(8, e.attachPrefix(ta));
            assertTags(e, ta);
            KvSequence f = cache.newSequence();
            assertEquals(4, f.attachPrefix(new int[] {1, 2, 3, 9, 5, 6, 7, 0}));
            for (KvSequence s : List.of(a, b, c, d, e, f)) {
                s.close();
            }
            assertEquals(0, cache.publishedBlocks());
            assertEquals(0, cache.usedBlocks());
        }
    }

    @Test
    void publishingTheSamePrefixTwiceKeepsTheFirstBlock() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 32)) {
            int[] t = range(10, 22);
            KvSequence a = cache.newSequence();
            append(a, t);
            KvSequence b = cache.newSequence();
            append(b, t);
            a.publish(t);
            b.publish(t);
            a.publish(t);
            assertEquals(3, cache.publishedBlocks());
            KvSequence c = cache.newSequence();
            assertEquals(12, c.attachPrefix(t));
            assertArrayEquals(Arrays.copyOf(a.blockTable(), 3), Arrays.copyOf(c.blockTable(), 3));
            a.close();
            assertEquals(3, cache.publishedBlocks(), "c holds a's blocks");
            c.close();
            assertEquals(0, cache.publishedBlocks());
            b.publish(t);
            assertEquals(3, cache.publishedBlocks());
            KvSequence d = cache.newSequence();
            assertEquals(12, d.attachPrefix(t));
            assertArrayEquals(Arrays.copyOf(b.blockTable(), 3), Arrays.copyOf(d.blockTable(), 3));
            assertThrows(IllegalArgumentException.class, () -> b.publish(range(0, 13)));
            assertThrows(IllegalStateException.class, () -> b.attachPrefix(t));
            b.close();
            d.close();
            assertEquals(0, cache.publishedBlocks());
        }
    }

    @Test
    void aSoleOwnerThatRewritesAPublishedBlockUnpublishesIt() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 32)) {
            int[] t = range(10, 18);
            KvSequence a = cache.newSequence();
            append(a, t);
            a.publish(t);
            a.compact(2, new int[] {5, 6, 7});
            assertEquals(0, cache.publishedBlocks(), "both blocks rewritten");
            a.truncate(0);
            append(a, t);
            a.publish(t);
            a.compact(5, new int[] {6});
            assertEquals(1, cache.publishedBlocks(), "the first block is untouched");
            KvSequence b = cache.newSequence();
            assertEquals(4, b.attachPrefix(t));
            b.close();
            a.close();
            assertEquals(0, cache.publishedBlocks());
        }
    }

    @Test
    void forksAndClosesFromManyThreadsLeakNothing() throws Exception {
        try (KvCache cache = new KvCache(2, 2, 4, 4, 256, DType.BF16)) {
            KvSequence root = cache.newSequence();
            int[] prompt = range(1, 11);
            append(root, prompt);
            root.publish(prompt);
            int rootBlocks = cache.usedBlocks();
            int threads = 4;
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> done = new ArrayList<>();
            try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
                for (int t = 0; t < threads; t++) {
                    int id = t;
                    done.add(pool.submit(() -> {
                        start.await();
                        ThreadLocalRandom rnd = ThreadLocalRandom.current();
                        for (int it = 0; it < 300; it++) {
                            KvSequence s = rnd.nextBoolean() ? forkOf(root) : attached(cache, prompt);
                            append(s, 1000 * (id + 1) + it, 7);
                            KvSequence f = s.fork();
                            f.truncate(rnd.nextInt(f.length() + 1));
                            append(f, 5);
                            int[] want = Arrays.copyOf(prompt, 12);
                            want[10] = 1000 * (id + 1) + it;
                            want[11] = 7;
                            assertTags(s, want);
                            s.close();
                            f.close();
                        }
                        return null;
                    }));
                }
                start.countDown();
                for (Future<?> f : done) {
                    f.get();
                }
            }
            assertEquals(rootBlocks, cache.usedBlocks());
            root.close();
            assertEquals(0, cache.usedBlocks());
            assertEquals(0, cache.publishedBlocks());
        }
    }

    @Test
    void anotherUserCannotTakeReservedBlocks() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 8)) {
            KvReservation r = cache.reserve(5);
            assertEquals(5, r.limit());
            assertEquals(5, cache.reservedBlocks());
            assertNull(cache.tryReserve(4), "5 of 8 reserved: only 3 left to reserve");
            TandemException refused = assertThrows(TandemException.class, () -> cache.reserve(4));
            assertEquals("cannot reserve 4 KV blocks: only 3 of the cache's 8 blocks of 4 tokens (" + cache.bytesPerBlock()
                    + " bytes each) are free and not already reserved (8 free, 5 of them reserved).", refused.getMessage());

            // an unreserved user gets the 3 blocks nobody reserved, and no more
            KvSequence other = cache.newSequence();
            append(other, range(0, 12));
            int[] table = Arrays.copyOf(other.blockTable(), other.blockCount());
            TandemException full = assertThrows(TandemException.class, () -> other.append(1));
            assertEquals("KV cache is full: 1 more block needed but 5 of 8 blocks of 4 tokens (" + cache.bytesPerBlock()
                    + " bytes each, " + cache.totalBytes() + " bytes in all) are free and 5 of those are reserved.",
                    full.getMessage());
            assertArrayEquals(table, Arrays.copyOf(other.blockTable(), other.blockCount()), "nothing changed");
            assertEquals(3, cache.usedBlocks());

            // the reservation's sequences still get all five, with the cache otherwise full
            KvSequence mine = r.newSequence();
            assertSame(r, mine.reservation());
            append(mine, range(100, 117));
            assertEquals(5, r.charged());
            assertEquals(0, cache.freeBlocks());
            assertEquals(0, cache.reservedBlocks());
            assertTags(mine, range(100, 117));
            assertTags(other, range(0, 12));

            // a sixth is a sizing bug of the reservation's owner, told apart from a full cache
            TandemException exhausted = assertThrows(TandemException.class, () -> mine.append(4));
            assertEquals("KV reservation of 5 blocks exhausted: 1 more block needed but only 0 left (the other 5 were "
                    + "taken by its sequences and are not back in the pool).", exhausted.getMessage());
            assertEquals(17, mine.length());

            // blocks it gives back are its own again, not the other user's
            mine.truncate(8);
            assertEquals(2, r.charged());
            assertEquals(3, cache.reservedBlocks());
            assertThrows(TandemException.class, () -> other.append(1));
            append(mine, range(200, 209));
            assertEquals(5, r.charged());
            mine.close();
            other.close();
            r.close();
            assertEquals(0, cache.reservedBlocks());
            assertEquals(8, cache.freeBlocks());
            assertNotNull(cache.tryReserve(8));
        }
    }

    @Test
    void copyOnWriteChargesTheWritersReservation() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 16)) {
            KvReservation ra = cache.reserve(4);
            KvReservation rb = cache.reserve(4);
            KvSequence a = ra.newSequence();
            int[] prompt = range(1, 7);
            append(a, prompt);
            a.publish(prompt); // its first block, full, is in the prefix index
            assertEquals(2, ra.charged());

            // a fork shares (no charge) and stays in the reservation; its copy-on-write is charged there too
            KvSequence f = a.fork();
            assertSame(ra, f.reservation());
            assertEquals(2, ra.charged());
            append(f, 70);
            assertEquals(3, ra.charged());

            // b attaches a's first block (no charge), cuts into it and writes: the copy is b's reservation's
            KvSequence b = rb.newSequence();
            assertEquals(4, b.attachPrefix(prompt));
            assertEquals(0, rb.charged());
            b.truncate(2);
            append(b, 50, 51);
            assertNotEquals(a.blockTable()[0], b.blockTable()[0], "copied on write");
            assertEquals(1, rb.charged());
            assertEquals(3, ra.charged());
            assertTags(b, 1, 2, 50, 51);
            assertTags(a, prompt);

            // compact's copy-on-write alike: f rewrites its first block, which a still holds (+1), and
            // lets go of its own second block, back to the pool (−1)
            f.compact(1, new int[] {3, 6});
            assertTags(f, 1, 4, 70);
            assertEquals(3, ra.charged());
            TandemException e = assertThrows(TandemException.class, () -> f.append(9));
            assertEquals("KV reservation of 4 blocks exhausted: 2 more blocks needed but only 1 left (the other 3 were "
                    + "taken by its sequences and are not back in the pool).", e.getMessage());
            assertEquals(3, f.length());

            // an unreserved writer's copy is charged to no one
            KvSequence u = cache.newSequence();
            assertEquals(4, u.attachPrefix(prompt));
            u.truncate(3);
            int used = cache.usedBlocks();
            append(u, 90);
            assertEquals(used + 1, cache.usedBlocks(), "copied on write");
            assertEquals(3, ra.charged());
            assertEquals(1, rb.charged());
            assertEquals(4, cache.reservedBlocks());
            for (KvSequence s : List.of(a, f, b, u)) {
                s.close();
            }
            assertEquals(0, ra.charged());
            assertEquals(0, rb.charged());
            assertEquals(8, cache.reservedBlocks());
            ra.close();
            rb.close();
            assertEquals(0, cache.usedBlocks());
        }
    }

    @Test
    void aSharedBlockStaysChargedToTheReservationThatTookItUntilItReturnsToThePool() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 16)) {
            KvReservation ra = cache.reserve(2);
            KvReservation rb = cache.reserve(3);
            int[] prompt = range(1, 9);
            KvSequence a = ra.newSequence();
            append(a, prompt);
            a.publish(prompt);
            KvSequence b = rb.newSequence();
            assertEquals(8, b.attachPrefix(prompt));
            append(b, 9);
            assertEquals(2, ra.charged(), "a took both shared blocks");
            assertEquals(1, rb.charged(), "b took only its own third block");

            // a lets go, but b still holds them: they stay in use and charged to ra
            a.close();
            assertEquals(3, cache.usedBlocks());
            assertEquals(2, ra.charged());
            KvSequence again = ra.newSequence();
            assertThrows(TandemException.class, () -> again.append(1), "ra's two blocks are still taken");

            // once they return to the pool, ra has them back
            b.close();
            assertEquals(0, ra.charged());
            assertEquals(0, rb.charged());
            append(again, 1, 2, 3, 4, 5);
            assertEquals(2, ra.charged());
            again.close();
            ra.close();
            rb.close();
            assertEquals(0, cache.usedBlocks());
            assertEquals(0, cache.reservedBlocks());
        }
    }

    @Test
    void closingAReservationReleasesItsHeadroomAndLeavesItsBlocksInUseUncharged() {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 8)) {
            KvReservation r = cache.reserve(4);
            KvSequence s = r.newSequence();
            append(s, 1, 2, 3, 4, 5, 6);
            KvSequence f = s.fork();
            assertEquals(2, r.charged());
            assertEquals(2, cache.reservedBlocks());
            assertEquals(6, cache.freeBlocks());

            r.close();
            assertTrue(r.isClosed());
            assertEquals(0, r.charged());
            assertEquals(0, r.remaining());
            assertEquals(0, cache.reservedBlocks(), "the two blocks not taken are free for anyone");
            assertEquals(2, cache.usedBlocks(), "the two taken stay in use");
            r.close();
            assertEquals(0, cache.reservedBlocks(), "closing twice changes nothing");
            assertThrows(IllegalStateException.class, r::newSequence);

            // its sequences live on, now taking blocks as unreserved ones do
            KvReservation other = cache.reserve(3);
            assertTags(s, 1, 2, 3, 4, 5, 6);
            append(s, 7, 8, 9, 10, 11, 12, 13, 14); // a copy of the shared block and two fresh ones
            assertEquals(5, cache.usedBlocks());
            assertEquals(0, r.charged());
            TandemException e = assertThrows(TandemException.class, () -> f.append(3));
            assertTrue(e.getMessage().startsWith("KV cache is full: 1 more block needed"), e.getMessage());
            assertTrue(e.getMessage().endsWith("and 3 of those are reserved."), e.getMessage());

            // returning the blocks it took while open does not give anything back to the closed reservation
            s.close();
            f.close();
            assertEquals(0, cache.usedBlocks());
            assertEquals(0, r.charged());
            assertEquals(3, cache.reservedBlocks(), "only the open reservation is reserved");
            other.close();
            assertEquals(0, cache.reservedBlocks());
        }
    }

    @Test
    void reservedSequencesNeverFailWhileAnotherThreadFillsTheCache() throws Exception {
        try (KvCache cache = new KvCache(1, 1, 4, 4, 64)) {
            int threads = 3, perThread = 10; // blocks each reserved thread may hold at once
            List<KvReservation> reservations = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                reservations.add(cache.reserve(perThread));
            }
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> done = new ArrayList<>();
            AtomicBoolean stop = new AtomicBoolean();
            AtomicInteger greedyFull = new AtomicInteger();
            try (ExecutorService pool = Executors.newFixedThreadPool(threads + 1)) {
                // one thread keeps taking every block not reserved, now and then giving some back
                Future<?> greedy = pool.submit(() -> {
                    start.await();
                    List<KvSequence> held = new ArrayList<>();
                    ThreadLocalRandom rnd = ThreadLocalRandom.current();
                    while (!stop.get()) {
                        KvSequence s = cache.newSequence();
                        try {
                            s.append(4 * (1 + rnd.nextInt(4)));
                            held.add(s);
                        } catch (TandemException e) {
                            assertTrue(e.getMessage().contains("KV cache is full"), e.getMessage());
                            greedyFull.incrementAndGet();
                            s.close();
                            if (!held.isEmpty() && rnd.nextInt(4) == 0) {
                                held.remove(rnd.nextInt(held.size())).close();
                            }
                        }
                    }
                    held.forEach(KvSequence::close);
                    return null;
                });
                for (int t = 0; t < threads; t++) {
                    int id = t;
                    KvReservation r = reservations.get(t);
                    done.add(pool.submit(() -> {
                        start.await();
                        ThreadLocalRandom rnd = ThreadLocalRandom.current();
                        for (int it = 0; it < 300; it++) {
                            // at most 6 blocks, then a fork's copy of the last and 2 more: within the 10
                            int n = 1 + rnd.nextInt(4 * perThread - 16);
                            int[] tags = range(1000 * id, 1000 * id + n);
                            try (KvSequence s = r.newSequence()) {
                                append(s, tags);
                                try (KvSequence f = s.fork()) {
                                    append(f, 1, 2, 3, 4, 5, 6, 7);
                                }
                                assertTags(s, tags);
                            }
                            assertEquals(0, r.charged(), "everything it took came back");
                        }
                        return null;
                    }));
                }
                start.countDown();
                try {
                    for (Future<?> f : done) {
                        f.get();
                    }
                } finally {
                    stop.set(true);
                }
                greedy.get();
            }
            assertTrue(greedyFull.get() > 0, "the unreserved thread found the cache full");
            assertEquals(threads * perThread, cache.reservedBlocks());
            reservations.forEach(KvReservation::close);
            assertEquals(0, cache.usedBlocks());
            assertEquals(0, cache.reservedBlocks());
        }
    }

    private static KvSequence forkOf(KvSequence root) {
        // fork only reads root's table, so concurrent forks of one sequence are fine
        return root.fork();
    }

    private static KvSequence attached(KvCache cache, int[] prompt) {
        KvSequence s = cache.newSequence();
        int n = s.attachPrefix(prompt);
        append(s, Arrays.copyOfRange(prompt, n, prompt.length));
        return s;
    }
}
