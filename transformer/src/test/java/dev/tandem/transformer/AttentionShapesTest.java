package dev.tandem.transformer;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Tree, segment and bidirectional attention shapes on bard-l / bard-s, each checked bit for bit against
 * the plain causal chain it must equal.
 */
class AttentionShapesTest {
    private static LanguageModel model;

    @BeforeAll
    static void load() {
        model = ModelLoader.load(TestModels.model("bard-l"));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static void assertBitIdentical(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int j = 0; j < expected.length; j++) {
            if (Float.floatToRawIntBits(expected[j]) != Float.floatToRawIntBits(actual[j])) {
                throw new AssertionError(what + ": value " + j + " differs: " + expected[j] + " vs " + actual[j]);
            }
        }
    }

    static int[] randomTokens(SplittableRandom rnd, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(vocab);
        }
        return t;
    }

    static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    /** A random tree of depth <= 5 and <= 4 children per node, as parent indices with parents first. */
    static int[] randomTree(SplittableRandom rnd) {
        List<Integer> parents = new ArrayList<>();
        List<Integer> depths = new ArrayList<>();
        // Children of the cached prefix (parent -1), then grow breadth-first or depth-first at random.
        int roots = 1 + rnd.nextInt(3);
        List<Integer> frontier = new ArrayList<>();
        for (int i = 0; i < roots; i++) {
            parents.add(-1);
            depths.add(1);
            frontier.add(parents.size() - 1);
        }
        boolean depthFirst = rnd.nextBoolean();
        while (!frontier.isEmpty() && parents.size() < 48) {
            int node = depthFirst ? frontier.removeLast() : frontier.removeFirst();
            if (depths.get(node) >= 5) {
                continue;
            }
            int children = rnd.nextInt(5); // 0..4
            for (int c = 0; c < children && parents.size() < 48; c++) {
                parents.add(node);
                depths.add(depths.get(node) + 1);
                frontier.add(parents.size() - 1);
            }
        }
        return parents.stream().mapToInt(Integer::intValue).toArray();
    }

    @ParameterizedTest(name = "seed {0}")
    @ValueSource(longs = {1, 2, 3, 4, 5})
    void everyTreeNodeMatchesItsRootToNodePathRunAsAPlainChainBitForBit(long seed) {
        System.out.println("tree seed " + seed);
        SplittableRandom rnd = new SplittableRandom(seed);
        int vocab = model.config().vocabSize();
        int[] prompt = randomTokens(rnd, 3 + rnd.nextInt(30), vocab);
        int[] parents = randomTree(rnd);
        int n = parents.length;
        int[] tokens = randomTokens(rnd, n, vocab);
        int[] depth = new int[n];
        int[] positions = new int[n];
        for (int i = 0; i < n; i++) {
            depth[i] = parents[i] < 0 ? 1 : depth[parents[i]] + 1;
            positions[i] = prompt.length + depth[i] - 1;
        }
        ForwardResult tree;
        try (KvSequence seq = model.newSequence(); KvSequence other = model.newSequence()) {
            model.forward(Batch.of(Batch.Entry.continuation(seq, prompt)));
            // Share the pass with an unrelated causal sequence, as a scheduler would.
            tree = model.forward(Batch.of(
                    Batch.Entry.continuation(other, randomTokens(rnd, 5, vocab)),
                    Batch.Entry.of(seq, tokens, positions, new AttentionShape.Tree(parents)).withAllLogits()));
            assertEquals(prompt.length + n, seq.length());
        }
        for (int i = 0; i < n; i++) {
            int[] path = new int[depth[i]];
            for (int a = i, k = depth[i] - 1; a >= 0; a = parents[a], k--) {
                path[k] = tokens[a];
            }
            try (KvSequence chain = model.newSequence()) {
                float[] expected = model.forward(Batch.of(Batch.Entry.continuation(chain, concat(prompt, path)))).lastLogits(0);
                assertBitIdentical(expected, tree.logits(1, i), "seed " + seed + " tree " + Arrays.toString(parents) + " node " + i);
            }
        }
    }

    /** K and V of logical positions [from, from + count) of {@code seq}, every layer, as raw bytes. */
    static byte[] kvBytes(KvSequence seq, int from, int count) {
        KvCache cache = seq.cache();
        long slotBytes = (long) cache.slotWidth() * cache.dtype().byteSize();
        byte[] out = new byte[(int) (2L * cache.layers() * count * slotBytes)];
        int o = 0;
        for (int l = 0; l < cache.layers(); l++) {
            for (MemorySegment m : new MemorySegment[] {((dev.tandem.runtime.kv.HostKvStorage) cache.storage()).keys(l), ((dev.tandem.runtime.kv.HostKvStorage) cache.storage()).values(l)}) {
                for (int p = from; p < from + count; p++) {
                    MemorySegment.copy(m, java.lang.foreign.ValueLayout.JAVA_BYTE, seq.slot(p) * slotBytes, out, o, (int) slotBytes);
                    o += (int) slotBytes;
                }
            }
        }
        return out;
    }

    @ParameterizedTest(name = "shared cached prefix: {0}")
    @ValueSource(booleans = {false, true})
    void segmentsPrefilledInOnePassMatchEachSegmentPrefilledAloneInLogitsAndKv(boolean sharedPrefix) {
        long seed = sharedPrefix ? 11 : 12;
        System.out.println("segments seed " + seed);
        SplittableRandom rnd = new SplittableRandom(seed);
        int vocab = model.config().vocabSize();
        int[] prefix = sharedPrefix ? randomTokens(rnd, 21, vocab) : new int[0];
        int[][] passages = {randomTokens(rnd, 7, vocab), randomTokens(rnd, 19, vocab), randomTokens(rnd, 1, vocab),
                randomTokens(rnd, 33, vocab)};
        int total = Arrays.stream(passages).mapToInt(p -> p.length).sum();
        int[] tokens = new int[0];
        int[] positions = new int[total];
        int[] starts = new int[passages.length];
        for (int s = 0; s < passages.length; s++) {
            starts[s] = tokens.length;
            for (int j = 0; j < passages[s].length; j++) {
                positions[tokens.length + j] = prefix.length + j; // positions restart in each segment
            }
            tokens = concat(tokens, passages[s]);
        }
        try (KvSequence seq = model.newSequence()) {
            if (prefix.length > 0) {
                model.forward(Batch.of(Batch.Entry.continuation(seq, prefix)));
            }
            ForwardResult together = model.forward(Batch.of(
                    Batch.Entry.of(seq, tokens, positions, new AttentionShape.Segments(starts, sharedPrefix)).withAllLogits()));
            for (int s = 0; s < passages.length; s++) {
                try (KvSequence alone = model.newSequence()) {
                    ForwardResult r = model.forward(Batch.of(Batch.Entry.continuationAllLogits(alone, concat(prefix, passages[s]))));
                    for (int j = 0; j < passages[s].length; j++) {
                        assertBitIdentical(r.logits(0, prefix.length + j), together.logits(0, starts[s] + j),
                                "segment " + s + " row " + j);
                    }
                    byte[] expected = kvBytes(alone, prefix.length, passages[s].length);
                    byte[] actual = kvBytes(seq, prefix.length + starts[s], passages[s].length);
                    assertTrue(Arrays.equals(expected, actual), "segment " + s + ": KV differs from the segment prefilled alone");
                }
            }
        }
    }

    @Test
    void segmentsThatDoNotSeeThePrefixIgnoreIt() {
        SplittableRandom rnd = new SplittableRandom(13);
        int vocab = model.config().vocabSize();
        int[] passage = randomTokens(rnd, 9, vocab);
        int[] positions = new int[9];
        Arrays.setAll(positions, i -> i);
        float[] expected;
        try (KvSequence alone = model.newSequence()) {
            expected = model.forward(Batch.of(Batch.Entry.continuation(alone, passage))).lastLogits(0);
        }
        try (KvSequence seq = model.newSequence()) {
            model.forward(Batch.of(Batch.Entry.continuation(seq, randomTokens(rnd, 17, vocab))));
            float[] got = model.forward(Batch.of(Batch.Entry.of(seq, passage, positions,
                    new AttentionShape.Segments(new int[] {0}, false)).withLogitRows(8))).lastLogits(0);
            assertBitIdentical(expected, got, "segment after an unseen prefix");
        }
    }

    @Test
    void bidirectionalRowsSeeLaterRowsAndCausalRowsDoNot() {
        int[] a = {1920, 58, 10, 73, 671, 331};
        int[] b = a.clone();
        b[5] = 44;
        try (KvSequence s1 = model.newSequence(); KvSequence s2 = model.newSequence();
             KvSequence s3 = model.newSequence(); KvSequence s4 = model.newSequence()) {
            int[] pos = {0, 1, 2, 3, 4, 5};
            ForwardResult r = model.forward(Batch.of(
                    Batch.Entry.of(s1, a, pos, AttentionShape.BIDIRECTIONAL).withAllLogits(),
                    Batch.Entry.of(s2, b, pos, AttentionShape.BIDIRECTIONAL).withAllLogits(),
                    Batch.Entry.of(s3, a, pos, AttentionShape.CAUSAL).withAllLogits(),
                    Batch.Entry.of(s4, b, pos, AttentionShape.CAUSAL).withAllLogits()));
            assertFalse(Arrays.equals(r.logits(0, 0), r.logits(1, 0)), "bidirectional row 0 must see row 5");
            assertBitIdentical(r.logits(2, 0), r.logits(3, 0), "causal row 0");
            assertBitIdentical(r.logits(2, 4), r.logits(3, 4), "causal row 4");
            // Bidirectional rows see nothing of another sequence: the same rows alone give the same bits.
            try (KvSequence alone = model.newSequence()) {
                float[] row0 = model.forward(Batch.of(Batch.Entry.of(alone, a, pos, AttentionShape.BIDIRECTIONAL)
                        .withLogitRows(0))).lastLogits(0);
                assertBitIdentical(row0, r.logits(0, 0), "bidirectional row 0 alone");
            }
        }
    }

    @Test
    void aConfigWithIsCausalFalseAttendsBothWaysWhateverTheShape(@TempDir Path tmp) throws IOException {
        Path dir = TestModels.copyOf("bard-s", tmp.resolve("bard-s-bidirectional"));
        Path config = dir.resolve("config.json");
        String json = Files.readString(config);
        Files.writeString(config, json.replaceFirst("\\{", "{\n  \"is_causal\": false,"));
        int[] a = {1920, 58, 10, 73, 671, 331, 44};
        int[] b = a.clone();
        b[6] = 875;
        try (LanguageModel bidirectional = ModelLoader.load(dir); LanguageModel causal = ModelLoader.load(TestModels.model("bard-s"))) {
            assertFalse(bidirectional.config().isCausal());
            assertTrue(causal.config().isCausal());
            for (int row : new int[] {0, 3}) {
                float[] ba = rowLogits(bidirectional, a, row), bb = rowLogits(bidirectional, b, row);
                assertFalse(Arrays.equals(ba, bb), "is_causal false: row " + row + " must change when token 6 changes");
                assertBitIdentical(rowLogits(causal, a, row), rowLogits(causal, b, row), "causal row " + row);
            }
        }
    }

    private static float[] rowLogits(LanguageModel m, int[] tokens, int row) {
        try (KvSequence seq = m.newSequence()) {
            // Asked for as causal: the config overrides it.
            return m.forward(Batch.of(Batch.Entry.continuation(seq, tokens).withLogitRows(row))).lastLogits(0);
        }
    }

    @Test
    void badShapesAreRejectedBeforeAnyCacheIsTouched() {
        try (KvSequence ok = model.newSequence(); KvSequence seq = model.newSequence()) {
            model.forward(Batch.of(Batch.Entry.continuation(seq, 5, 6, 7)));
            int[] pos = {3, 4, 4};
            // A parent after its child, a parent out of range, a wrong count of parents.
            for (int[] parents : new int[][] {{-1, 2, 0}, {-1, 0, 5}, {-1, 0}, {-2, 0, 1}}) {
                assertThrows(IllegalArgumentException.class,
                        () -> Batch.Entry.of(seq, new int[] {1, 2, 3}, pos, new AttentionShape.Tree(parents)),
                        Arrays.toString(parents));
            }
            for (int[] starts : new int[][] {{1}, {0, 0}, {0, 3}, {}, {0, 2, 1}}) {
                assertThrows(IllegalArgumentException.class,
                        () -> Batch.Entry.of(seq, new int[] {1, 2, 3}, pos, new AttentionShape.Segments(starts, true)),
                        Arrays.toString(starts));
            }
            // Validation of a batch happens before any sequence grows: a good entry first, a bad one second.
            Batch.Entry good = Batch.Entry.continuation(ok, 1, 2);
            Batch.Entry badPosition = Batch.Entry.of(seq, new int[] {1}, new int[] {-1}, AttentionShape.CAUSAL);
            assertThrows(IllegalArgumentException.class, () -> model.forward(Batch.of(good, badPosition)));
            Batch.Entry badLayer = Batch.Entry.continuation(seq, 1).withHiddenStates(new int[] {model.config().numLayers() + 1}, 0);
            assertThrows(IllegalArgumentException.class, () -> model.forward(Batch.of(good, badLayer)));
            Batch.Entry badWidth = Batch.Entry.continuationOfEmbeddings(seq, new float[][] {new float[3]});
            assertThrows(IllegalArgumentException.class, () -> model.forward(Batch.of(good, badWidth)));
            assertEquals(0, ok.length());
            assertEquals(3, seq.length());
            assertEquals(DType.F32, model.kvCache().dtype());
        }
    }
}
