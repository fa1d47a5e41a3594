package dev.tandem.runtime.kv;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Random sequences of append / fork / truncate / compact / close / publish / attachPrefix on a small
 * cache, checked after every operation against a naive reference: each sequence modelled as a list of
 * rows (K and V of every layer) and the tokens at its positions. A row appended causally holds the
 * KV of its token prefix (a function of the exact prefix), so attaching a published prefix must give
 * the rows a fresh computation would; some appends write junk rows, which must never be published.
 *
 * <p>Reservations are opened and closed at random and sequences made in and out of them. The reference
 * charges each block that appears in some block table to the reservation of the sequence whose operation
 * made it appear (if open), until it leaves every table, and checks the cache's charges, that
 * {@code free ≥ Σ (limit − charged)}, and that every append and compact succeeds exactly when the blocks
 * it takes are available — within its reservation's limit for a sequence of an open reservation
 * (whatever the others did), within the free and unreserved blocks otherwise.
 */
class KvCachePropertyTest {
    /** Fixed by default so failures reproduce; override with -Dtandem.test.seed=... to explore. */
    private static final Long SEED_OVERRIDE = Long.getLong("tandem.test.seed");
    private static final long[] SEEDS = SEED_OVERRIDE != null
            ? new long[] {SEED_OVERRIDE}
            : new long[] {0x4B5EED01L, 0x4B5EED02L, 0x4B5EED03L};
    private static final int OPERATIONS = 4000;

    private static final int LAYERS = 2, KV_HEADS = 2, HEAD_DIM = 4, BLOCK = 4, BLOCKS = 64;
    private static final int WIDTH = KV_HEADS * HEAD_DIM;
    private static final int MAX_LIVE = 16, MAX_LENGTH = 64, VOCAB = 3;
    private static final int MAX_RESERVATIONS = 6, MAX_RESERVATION = 12;
    private static final int KINDS = 13;

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of(DType.F32, false),
                Arguments.of(DType.BF16, false),
                Arguments.of(DType.F32, true),
                Arguments.of(DType.BF16, true));
    }

    /** The reference: tokens and row keys per position; a row's content is a function of its key. */
    private static final class Model {
        final KvSequence seq;
        final Res res; // the reservation it was made in (or forked from a sequence of); null for none
        final List<Integer> tokens = new ArrayList<>();
        final List<Long> rows = new ArrayList<>();

        Model(KvSequence seq) {
            this(seq, null);
        }

        Model(KvSequence seq, Res res) {
            this.seq = seq;
            this.res = res;
        }

        int length() {
            return rows.size();
        }

        int[] tokenArray(int n) {
            int[] t = new int[n];
            for (int i = 0; i < n; i++) {
                t[i] = tokens.get(i);
            }
            return t;
        }

        /** Positions [0, n) whose rows are the causal KV of their token prefix. */
        int causalPrefix() {
            long h = ROOT;
            int n = 0;
            while (n < rows.size()) {
                h = prefixKey(h, tokens.get(n));
                if (rows.get(n) != h) {
                    break;
                }
                n++;
            }
            return n;
        }
    }

    /** The reference of one reservation. */
    private static final class Res {
        final KvReservation reservation;
        final int limit;
        boolean closed;

        Res(KvReservation reservation, int limit) {
            this.reservation = reservation;
            this.limit = limit;
        }
    }

    /**
     * The reference's block accounting: the blocks in some live sequence's table, and for each the
     * reservation it is charged to (null: none).
     */
    private static final class Charges {
        Set<Integer> used = new HashSet<>();
        final Map<Integer, Res> chargedTo = new HashMap<>();
        final List<Res> reservations = new ArrayList<>();

        int charged(Res r) {
            if (r.closed) {
                return 0;
            }
            int n = 0;
            for (Res c : chargedTo.values()) {
                if (c == r) {
                    n++;
                }
            }
            return n;
        }

        /** Σ over open reservations of (limit − charged). */
        int reserved() {
            int n = 0;
            for (Res r : reservations) {
                if (!r.closed) {
                    n += r.limit - charged(r);
                }
            }
            return n;
        }

        int free() {
            return BLOCKS - used.size();
        }

        /** Blocks a sequence of {@code r} may take now: its reservation's rest, or the unreserved free ones. */
        int available(Res r) {
            return r != null && !r.closed ? r.limit - charged(r) : free() - reserved();
        }

        /**
         * After one operation by a sequence of {@code actor} (null: outside any reservation): blocks new to
         * the tables are charged to it if open, blocks gone from every table are charged to no one. Only
         * operations that take blocks ({@code mayTake}) may add any; returns how many were added.
         */
        int update(List<Model> live, Res actor, boolean mayTake, String context) {
            Set<Integer> now = new HashSet<>();
            for (Model m : live) {
                for (int b = 0; b < m.seq.blockCount(); b++) {
                    now.add(m.seq.blockTable()[b]);
                }
            }
            int added = 0;
            for (int b : now) {
                if (!used.contains(b)) {
                    assertTrue(mayTake, context + ": block " + b + " appeared in a table without being taken");
                    chargedTo.put(b, actor != null && !actor.closed ? actor : null);
                    added++;
                }
            }
            for (int b : used) {
                if (!now.contains(b)) {
                    chargedTo.remove(b);
                }
            }
            used = now;
            return added;
        }

        void close(Res r) {
            r.closed = true;
            chargedTo.replaceAll((b, c) -> c == r ? null : c);
        }

        void check(KvCache cache, String context) {
            for (Res r : reservations) {
                int charged = charged(r);
                assertEquals(charged, r.reservation.charged(), context + ": blocks charged to a reservation of " + r.limit);
                assertTrue(charged <= r.limit, context + ": charged within the limit");
                assertEquals(r.closed ? 0 : r.limit - charged, r.reservation.remaining(), context + ": remaining");
                assertEquals(r.closed, r.reservation.isClosed(), context);
            }
            assertEquals(reserved(), cache.reservedBlocks(), context + ": reserved blocks = Σ (limit − charged)");
            assertTrue(cache.freeBlocks() >= cache.reservedBlocks(), context + ": free " + cache.freeBlocks()
                    + " ≥ reserved " + cache.reservedBlocks());
        }
    }

    /** Blocks {@code append(count)} takes from the pool: new blocks, plus a copy of a shared partial last block. */
    private static int blocksToAppend(KvCache cache, KvSequence s, int count) {
        int fresh = cache.blocksNeeded(s.length() + count) - s.blockCount();
        boolean copy = s.length() % BLOCK != 0 && cache.refCount(s.blockTable()[s.blockCount() - 1]) > 1;
        return fresh + (copy ? 1 : 0);
    }

    /** Blocks {@code compact(base, keep)} takes from the pool: a copy of each shared block that receives moved rows. */
    private static int blocksToCompact(KvCache cache, KvSequence s, int base, int[] keep) {
        int first = 0;
        while (first < keep.length && keep[first] == base + first) {
            first++;
        }
        if (first == keep.length) {
            return 0; // nothing moves: a truncation
        }
        int n = 0;
        for (int b = (base + first) / BLOCK; b <= (base + keep.length - 1) / BLOCK; b++) {
            if (cache.refCount(s.blockTable()[b]) > 1) {
                n++;
            }
        }
        return n;
    }

    /** Checks a failure to take {@code needed} blocks says the right thing: exhausted reservation or full cache. */
    private static void assertRefusal(TandemException e, Res r, String context) {
        if (r != null && !r.closed) {
            assertTrue(e.getMessage().startsWith("KV reservation of " + r.limit + " block"), context + ": " + e.getMessage());
        } else {
            assertTrue(e.getMessage().contains("KV cache is full"), context + ": " + e.getMessage());
        }
    }

    private static final long ROOT = 0x1234_5678_9abc_def0L;

    /** Key of the causal row after prefix key {@code h} and token {@code t}: a strong 64-bit mix. */
    static long prefixKey(long h, int t) {
        long z = h * 0x9e3779b97f4a7c15L + t + 1;
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    private final Map<Long, float[]> expected = new HashMap<>();

    /** A row's content: layers × (K, V) × width floats, rounded to the cache dtype. */
    private float[] rowOf(long key, DType dtype) {
        return expected.computeIfAbsent(key, k -> {
            SplittableRandom r = new SplittableRandom(k);
            float[] row = new float[LAYERS * 2 * WIDTH];
            for (int i = 0; i < row.length; i++) {
                float x = r.nextFloat() * 4 - 2;
                row[i] = dtype == DType.BF16 ? DType.bf16ToFloat(DType.floatToBf16(x)) : x;
            }
            return row;
        });
    }

    private void write(KvCache cache, int slot, long key) {
        SplittableRandom r = new SplittableRandom(key);
        for (int l = 0; l < LAYERS; l++) {
            for (int kv = 0; kv < 2; kv++) {
                var seg = kv == 0 ? ((HostKvStorage) cache.storage()).keys(l) : ((HostKvStorage) cache.storage()).values(l);
                for (int e = 0; e < WIDTH; e++) {
                    cache.dtype().write(seg, (long) slot * WIDTH + e, r.nextFloat() * 4 - 2);
                }
            }
        }
    }

    private void check(KvCache cache, List<Model> live, String context) {
        Map<Integer, Integer> holders = new HashMap<>();
        for (Model m : live) {
            KvSequence s = m.seq;
            if (s.length() != m.length()) {
                fail(context + ": length " + s.length() + ", reference " + m.length());
            }
            assertEquals(cache.blocksNeeded(s.length()), s.blockCount(), context + ": block count");
            for (int b = 0; b < s.blockCount(); b++) {
                holders.merge(s.blockTable()[b], 1, Integer::sum);
            }
            checkRows(cache, m, context);
        }
        assertEquals(holders.size(), cache.usedBlocks(), context + ": used blocks = distinct blocks held");
        for (var h : holders.entrySet()) {
            assertEquals(h.getValue(), cache.refCount(h.getKey()), context + ": reference count of block " + h.getKey());
        }
        assertTrue(cache.publishedBlocks() <= cache.usedBlocks(), context + ": published blocks are held");
    }

    private void checkRows(KvCache cache, Model m, String context) {
        DType dtype = cache.dtype();
        KvSequence s = m.seq;
        assertEquals(m.length(), s.length(), context + ": length");
        for (int pos = 0; pos < m.length(); pos++) {
                float[] want = rowOf(m.rows.get(pos), dtype);
                int slot = s.slot(pos);
                int i = 0;
                for (int l = 0; l < LAYERS; l++) {
                    for (int kv = 0; kv < 2; kv++) {
                        var seg = kv == 0 ? ((HostKvStorage) cache.storage()).keys(l) : ((HostKvStorage) cache.storage()).values(l);
                        for (int e = 0; e < WIDTH; e++, i++) {
                            float got = dtype.read(seg, (long) slot * WIDTH + e);
                            if (Float.floatToRawIntBits(got) != Float.floatToRawIntBits(want[i])) {
                                fail(context + ": position " + pos + " layer " + l + (kv == 0 ? " K" : " V")
                                        + " element " + e + " reads " + got + ", reference " + want[i]);
                            }
                        }
                    }
                }
            }
    }

    @ParameterizedTest(name = "{0}, colliding hash {1}")
    @MethodSource("cases")
    void randomOperationsMatchANaiveReference(DType dtype, boolean collidingHash) {
        for (long seed : SEEDS) {
            System.out.println("KvCachePropertyTest: tandem.test.seed=" + seed + " dtype=" + dtype
                    + " collidingHash=" + collidingHash);
            run(seed, dtype, collidingHash);
        }
    }

    private void run(long seed, DType dtype, boolean collidingHash) {
        expected.clear();
        SplittableRandom rnd = new SplittableRandom(seed);
        // A few prompt templates over a tiny vocabulary, so prefixes recur.
        int[][] templates = new int[4][];
        for (int t = 0; t < templates.length; t++) {
            templates[t] = new int[MAX_LENGTH];
            for (int i = 0; i < MAX_LENGTH; i++) {
                templates[t][i] = rnd.nextInt(VOCAB);
            }
        }
        int[] counts = new int[KINDS];
        int protectedTakes = 0, exhausted = 0, refusedReservations = 0;
        int peak = 0;
        long probesAttached = 0;
        List<int[]> publishedTokens = new ArrayList<>();
        int fullErrors = 0, attachedPositions = 0;
        try (KvCache cache = new KvCache(LAYERS, KV_HEADS, HEAD_DIM, BLOCK, BLOCKS, dtype)) {
            if (collidingHash) {
                // Collides for every pair of blocks agreeing in their first token parity.
                cache.prefixHasherForTesting((parent, tokens, from, to) -> parent * 31 + (tokens[from] & 1));
            }
            List<Model> live = new ArrayList<>();
            Charges charges = new Charges();
            for (int op = 0; op < OPERATIONS; op++) {
                int kind = live.isEmpty() ? 0 : rnd.nextInt(KINDS);
                String context = "seed " + seed + " op " + op + " kind " + kind;
                Model m = live.isEmpty() ? null : live.get(rnd.nextInt(live.size()));
                Res actor = m == null ? null : m.res;
                boolean mayTake = false;
                switch (kind) {
                    case 0 -> { // new sequence, in an open reservation or not, maybe attaching a published prefix, then its prompt
                        if (live.size() >= MAX_LIVE) {
                            break;
                        }
                        int[] prompt = prompt(rnd, templates);
                        List<Res> open = charges.reservations.stream().filter(r -> !r.closed).toList();
                        actor = open.isEmpty() || rnd.nextInt(3) == 0 ? null : open.get(rnd.nextInt(open.size()));
                        mayTake = true;
                        Model n = new Model(actor == null ? cache.newSequence() : actor.reservation.newSequence(), actor);
                        assertEquals(actor == null ? null : actor.reservation, n.seq.reservation(), context);
                        int attached = rnd.nextInt(4) != 0 ? n.seq.attachPrefix(prompt) : 0;
                        assertEquals(0, attached % BLOCK, context);
                        assertTrue(attached <= prompt.length, context);
                        attachedPositions += attached;
                        long h = ROOT;
                        for (int i = 0; i < attached; i++) {
                            h = prefixKey(h, prompt[i]);
                            n.tokens.add(prompt[i]);
                            n.rows.add(h);
                        }
                        live.add(n);
                        // attaching takes no block: nothing new may be charged
                        charges.update(live, actor, false, context + " attach");
                        int[] rest = Arrays.copyOfRange(prompt, attached, prompt.length);
                        int needed = blocksToAppend(cache, n.seq, rest.length);
                        if (rest.length > 0 && actor != null && !actor.closed && needed > charges.free() - charges.reserved()) {
                            protectedTakes++;
                        }
                        if (!append(cache, n, rest, false, needed <= charges.available(actor), actor, context)) {
                            fullErrors++;
                        } else if (rnd.nextBoolean()) {
                            n.seq.publish(prompt);
                            remember(publishedTokens, prompt, rnd);
                        }
                    }
                    case 1, 2, 9, 10 -> { // append a few tokens, now and then junk (non-causal) rows
                        int count = 1 + rnd.nextInt(6);
                        if (m.length() + count > MAX_LENGTH) {
                            break;
                        }
                        int[] t = new int[count];
                        for (int i = 0; i < count; i++) {
                            t[i] = rnd.nextInt(VOCAB);
                        }
                        mayTake = true;
                        int needed = blocksToAppend(cache, m.seq, count);
                        if (actor != null && !actor.closed && needed > charges.free() - charges.reserved()) {
                            protectedTakes++;
                        }
                        if (!append(cache, m, t, rnd.nextInt(5) == 0, needed <= charges.available(actor), actor, context)) {
                            fullErrors++;
                            if (actor != null && !actor.closed) {
                                exhausted++;
                            }
                        }
                    }
                    case 3 -> { // fork
                        if (live.size() >= MAX_LIVE) {
                            break;
                        }
                        Model f = new Model(m.seq.fork(), m.res);
                        assertEquals(m.seq.reservation(), f.seq.reservation(), context + ": a fork stays in its reservation");
                        f.tokens.addAll(m.tokens);
                        f.rows.addAll(m.rows);
                        live.add(f);
                    }
                    case 4 -> { // truncate
                        int n = rnd.nextInt(m.length() + 1);
                        m.seq.truncate(n);
                        m.tokens.subList(n, m.tokens.size()).clear();
                        m.rows.subList(n, m.rows.size()).clear();
                    }
                    case 5 -> { // compact: keep [0, base) and a random increasing subset after it
                        int base = rnd.nextInt(m.length() + 1);
                        List<Integer> keepList = new ArrayList<>();
                        for (int p = base; p < m.length(); p++) {
                            if (rnd.nextInt(3) != 0) {
                                keepList.add(p);
                            }
                        }
                        int[] keep = keepList.stream().mapToInt(Integer::intValue).toArray();
                        mayTake = true;
                        boolean fits = blocksToCompact(cache, m.seq, base, keep) <= charges.available(actor);
                        try {
                            m.seq.compact(base, keep);
                        } catch (TandemException e) {
                            assertRefusal(e, actor, context);
                            assertTrue(!fits, context + ": compact refused although its blocks were available: " + e.getMessage());
                            fullErrors++;
                            break;
                        }
                        assertTrue(fits, context + ": compact took more blocks than were available to it");
                        List<Integer> tokens = new ArrayList<>(m.tokens.subList(0, base));
                        List<Long> rows = new ArrayList<>(m.rows.subList(0, base));
                        for (int p : keep) {
                            tokens.add(m.tokens.get(p));
                            rows.add(m.rows.get(p));
                        }
                        m.tokens.clear();
                        m.tokens.addAll(tokens);
                        m.rows.clear();
                        m.rows.addAll(rows);
                    }
                    case 6 -> { // close (sometimes twice)
                        m.seq.close();
                        if (rnd.nextBoolean()) {
                            m.seq.close();
                        }
                        live.remove(m);
                    }
                    case 7, 8 -> { // publish a causal prefix; a fresh sequence then attaches all its full blocks
                        int p = rnd.nextInt(m.causalPrefix() + 1);
                        int[] tokens = m.tokenArray(p);
                        m.seq.publish(tokens);
                        remember(publishedTokens, tokens, rnd);
                        try (KvSequence probe = cache.newSequence()) {
                            assertEquals(p / BLOCK * BLOCK, probe.attachPrefix(tokens), context + ": attach after publish");
                            Model pm = new Model(probe);
                            pm.tokens.addAll(m.tokens.subList(0, probe.length()));
                            pm.rows.addAll(m.rows.subList(0, probe.length()));
                            checkRows(cache, pm, context + " probe");
                        }
                    }
                    case 11 -> { // reserve, all or nothing
                        if (charges.reservations.stream().filter(r -> !r.closed).count() >= MAX_RESERVATIONS) {
                            break;
                        }
                        int blocks = rnd.nextInt(MAX_RESERVATION + 1);
                        boolean fits = blocks <= charges.free() - charges.reserved();
                        KvReservation r;
                        if (rnd.nextBoolean()) {
                            r = cache.tryReserve(blocks);
                        } else {
                            try {
                                r = cache.reserve(blocks);
                            } catch (TandemException e) {
                                assertTrue(e.getMessage().startsWith("cannot reserve " + blocks + " KV block"), e.getMessage());
                                r = null;
                            }
                        }
                        assertEquals(fits, r != null, context + ": reserving " + blocks + " with " + charges.free()
                                + " free and " + charges.reserved() + " reserved");
                        if (r == null) {
                            refusedReservations++;
                        } else {
                            assertEquals(blocks, r.limit(), context);
                            assertEquals(0, r.charged(), context);
                            charges.reservations.add(new Res(r, blocks));
                        }
                    }
                    case 12 -> { // close a reservation (maybe one closed already); its sequences live on, unreserved
                        if (charges.reservations.isEmpty()) {
                            break;
                        }
                        Res r = charges.reservations.get(rnd.nextInt(charges.reservations.size()));
                        r.reservation.close();
                        charges.close(r);
                        assertThrows(IllegalStateException.class, r.reservation::newSequence, context);
                        if (charges.reservations.size() > 2 * MAX_RESERVATIONS) {
                            charges.reservations.removeIf(x -> x.closed && live.stream().noneMatch(l -> l.res == x));
                        }
                    }
                    default -> throw new AssertionError();
                }
                charges.update(live, actor, mayTake, context);
                counts[kind]++;
                peak = Math.max(peak, cache.usedBlocks());
                // Soundness of the index: whatever a prefix ever published attaches now is its causal KV.
                for (int probes = 0; probes < 2 && !publishedTokens.isEmpty(); probes++) {
                    int[] tokens = publishedTokens.get(rnd.nextInt(publishedTokens.size()));
                    try (KvSequence probe = cache.newSequence()) {
                        int n = probe.attachPrefix(tokens);
                        probesAttached += n;
                        Model pm = new Model(probe);
                        long h = ROOT;
                        for (int i = 0; i < n; i++) {
                            h = prefixKey(h, tokens[i]);
                            pm.tokens.add(tokens[i]);
                            pm.rows.add(h);
                        }
                        checkRows(cache, pm, context + " index probe");
                    }
                }
                check(cache, live, context);
                charges.check(cache, context);
            }
            for (Model m : live) {
                m.seq.close();
            }
            live.clear();
            charges.update(live, null, false, "end");
            charges.check(cache, "end");
            for (Res r : charges.reservations) {
                r.reservation.close();
            }
            assertEquals(0, cache.reservedBlocks(), "no reservation left open");
            assertEquals(BLOCKS, cache.freeBlocks(), "every block back in the pool");
            assertEquals(0, cache.usedBlocks());
            assertEquals(0, cache.publishedBlocks(), "the prefix index is empty");
        }
        System.out.println("  operations by kind " + Arrays.toString(counts) + ", full-cache failures " + fullErrors
                + ", positions attached from the prefix index " + attachedPositions + ", peak blocks used " + peak + ", positions attached by index probes " + probesAttached
                + ", takes by reserved sequences that unreserved ones could not have made " + protectedTakes
                + ", exhausted reservations " + exhausted + ", refused reservations " + refusedReservations);
        assertTrue(attachedPositions > 0, "the prefix index was exercised");
        assertTrue(protectedTakes > 0, "reservations were exercised against a full cache");
        assertTrue(exhausted > 0, "a reservation ran out");
        assertTrue(refusedReservations > 0, "a reservation was refused");
    }

    private static void remember(List<int[]> published, int[] tokens, SplittableRandom rnd) {
        if (tokens.length < BLOCK) {
            return;
        }
        if (published.size() < 64) {
            published.add(tokens.clone());
        } else {
            published.set(rnd.nextInt(published.size()), tokens.clone());
        }
    }

    private static int[] prompt(SplittableRandom rnd, int[][] templates) {
        int[] t = templates[rnd.nextInt(templates.length)];
        int n = 1 + rnd.nextInt(MAX_LENGTH - 8);
        int[] p = Arrays.copyOf(t, n);
        if (rnd.nextInt(3) == 0) {
            p[rnd.nextInt(n)] = rnd.nextInt(VOCAB);
        }
        return p;
    }

    /**
     * Appends {@code tokens}, writing causal rows (or junk) through the returned slots; checks it succeeds
     * exactly when {@code fits}, and on a refusal checks it names the reservation (of {@code r}, if open)
     * or the full cache, that nothing changed, and returns false.
     */
    private boolean append(KvCache cache, Model m, int[] tokens, boolean junk, boolean fits, Res r, String context) {
        if (tokens.length == 0) {
            return true;
        }
        int[] table = Arrays.copyOf(m.seq.blockTable(), m.seq.blockCount());
        int length = m.seq.length();
        int used = cache.usedBlocks();
        int[] slots;
        try {
            slots = m.seq.append(tokens.length);
        } catch (TandemException e) {
            assertRefusal(e, r, context);
            assertTrue(!fits, context + ": append refused although its blocks were available: " + e.getMessage());
            assertEquals(length, m.seq.length(), context + ": length unchanged by a failed append");
            assertEquals(Arrays.toString(table), Arrays.toString(Arrays.copyOf(m.seq.blockTable(), m.seq.blockCount())),
                    context + ": block table unchanged by a failed append");
            assertEquals(used, cache.usedBlocks(), context + ": no block taken by a failed append");
            return false;
        }
        assertTrue(fits, context + ": append took more blocks than were available to it");
        long h = ROOT;
        for (int i = 0; i < m.length(); i++) {
            h = prefixKey(h, m.tokens.get(i));
        }
        SplittableRandom junkKeys = new SplittableRandom(h ^ 0x5a5a5a5aL);
        for (int i = 0; i < tokens.length; i++) {
            h = prefixKey(h, tokens[i]);
            long key = junk ? junkKeys.nextLong() : h;
            write(cache, slots[i], key);
            m.tokens.add(tokens[i]);
            m.rows.add(key);
        }
        return true;
    }
}
