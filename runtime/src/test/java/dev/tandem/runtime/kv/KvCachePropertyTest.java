package dev.tandem.runtime.kv;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Random sequences of append / fork / truncate / compact / close / publish / attachPrefix on a small
 * cache, checked after every operation against a naive reference: each sequence modelled as a list of
 * rows (K and V of every layer) and the tokens at its positions. A row appended causally holds the
 * KV of its token prefix (a function of the exact prefix), so attaching a published prefix must give
 * the rows a fresh computation would; some appends write junk rows, which must never be published.
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
        final List<Integer> tokens = new ArrayList<>();
        final List<Long> rows = new ArrayList<>();

        Model(KvSequence seq) {
            this.seq = seq;
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
        int[] counts = new int[11];
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
            for (int op = 0; op < OPERATIONS; op++) {
                int kind = live.isEmpty() ? 0 : rnd.nextInt(11);
                String context = "seed " + seed + " op " + op + " kind " + kind;
                Model m = live.isEmpty() ? null : live.get(rnd.nextInt(live.size()));
                switch (kind) {
                    case 0 -> { // new sequence, maybe attaching a published prefix, then its prompt
                        if (live.size() >= MAX_LIVE) {
                            break;
                        }
                        int[] prompt = prompt(rnd, templates);
                        Model n = new Model(cache.newSequence());
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
                        if (!append(cache, n, Arrays.copyOfRange(prompt, attached, prompt.length), false, context)) {
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
                        if (!append(cache, m, t, rnd.nextInt(5) == 0, context)) {
                            fullErrors++;
                        }
                    }
                    case 3 -> { // fork
                        if (live.size() >= MAX_LIVE) {
                            break;
                        }
                        Model f = new Model(m.seq.fork());
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
                        try {
                            m.seq.compact(base, keep);
                        } catch (TandemException e) {
                            assertTrue(e.getMessage().contains("KV cache is full"), e.getMessage());
                            fullErrors++;
                            break;
                        }
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
                    default -> throw new AssertionError();
                }
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
            }
            for (Model m : live) {
                m.seq.close();
            }
            assertEquals(BLOCKS, cache.freeBlocks(), "every block back in the pool");
            assertEquals(0, cache.usedBlocks());
            assertEquals(0, cache.publishedBlocks(), "the prefix index is empty");
        }
        System.out.println("  operations by kind " + Arrays.toString(counts) + ", full-cache failures " + fullErrors
                + ", positions attached from the prefix index " + attachedPositions + ", peak blocks used " + peak + ", positions attached by index probes " + probesAttached);
        assertTrue(attachedPositions > 0, "the prefix index was exercised");
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
     * Appends {@code tokens}, writing causal rows (or junk) through the returned slots; on a full cache
     * checks nothing changed and returns false.
     */
    private boolean append(KvCache cache, Model m, int[] tokens, boolean junk, String context) {
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
            assertTrue(e.getMessage().contains("KV cache is full"), e.getMessage());
            assertEquals(length, m.seq.length(), context + ": length unchanged by a failed append");
            assertEquals(Arrays.toString(table), Arrays.toString(Arrays.copyOf(m.seq.blockTable(), m.seq.blockCount())),
                    context + ": block table unchanged by a failed append");
            assertEquals(used, cache.usedBlocks(), context + ": no block taken by a failed append");
            return false;
        }
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
