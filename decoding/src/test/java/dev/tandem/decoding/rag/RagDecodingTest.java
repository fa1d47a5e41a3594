package dev.tandem.decoding.rag;

import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.decoding.sampling.Sampler;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 17's block-sparse RAG attention: passages computed once, attached read-only from a content-keyed cache, give
 * the logits of one sequence that prefills the same passages in one pass as independent segments, bit for bit; the
 * cache's blocks return to the pool when nothing holds them; bad input gets one sentence.
 */
public class RagDecodingTest {
    static final String[] PASSAGES = {
            "KING RICHARD III:\nNow is the winter of our discontent\nMade glorious summer by this sun of York;\n",
            "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
                    + "Arise, fair sun, and kill the envious moon,\nWho is already sick and pale with grief,\n",
            "First Citizen:\nWe are accounted poor citizens, the patricians good.\n",
    };
    static final String QUESTION = "\nMENENIUS:\nWhat work's, my countrymen, in hand?";
    static final int[] SYSTEM = {2047, 10, 11};

    static LanguageModel model;

    @BeforeAll
    static void load() throws Exception {
        model = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withKvTokens(16384));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static List<int[]> passages(int... which) {
        return passages(model, which);
    }

    static List<int[]> passages(LanguageModel model, int... which) {
        List<int[]> out = new ArrayList<>();
        for (int w : which) {
            out.add(model.tokenizer().encode(PASSAGES[w]));
        }
        return out;
    }

    static int[] positions(int from, int n) {
        int[] p = new int[n];
        Arrays.setAll(p, i -> from + i);
        return p;
    }

    /**
     * The reference: one sequence holding the prefix, then every passage prefilled in one pass as independent
     * segments that see the prefix (each at positions p0 ..), then the question at p0 + the longest passage, then
     * greedy decoding; returns every row of logits of the question's last row and of each decoded token.
     */
    static List<float[]> onePass(LanguageModel model, int[] prefix, List<int[]> passages, int[] question, int steps) {
        List<float[]> rows = new ArrayList<>();
        try (KvSequence kv = model.newSequence()) {
            if (prefix.length > 0) {
                model.forward(Batch.of(Batch.Entry.of(kv, prefix, positions(0, prefix.length), AttentionShape.CAUSAL)));
            }
            int total = passages.stream().mapToInt(p -> p.length).sum();
            int longest = passages.stream().mapToInt(p -> p.length).max().orElse(0);
            int[] tokens = new int[total];
            int[] pos = new int[total];
            int[] starts = new int[passages.size()];
            int at = 0;
            for (int i = 0; i < passages.size(); i++) {
                starts[i] = at;
                int[] p = passages.get(i);
                System.arraycopy(p, 0, tokens, at, p.length);
                System.arraycopy(positions(prefix.length, p.length), 0, pos, at, p.length);
                at += p.length;
            }
            model.forward(Batch.of(Batch.Entry.of(kv, tokens, pos, new AttentionShape.Segments(starts, true))));
            int q = prefix.length + longest;
            ForwardResult r = model.forward(Batch.of(Batch.Entry.of(kv, question, positions(q, question.length),
                    AttentionShape.CAUSAL).withLogitRows(question.length - 1)));
            float[] last = r.lastLogits(0);
            rows.add(last);
            int next = q + question.length;
            for (int s = 0; s < steps; s++) {
                int token = Sampler.argmax(last);
                last = model.forward(Batch.of(Batch.Entry.of(kv, new int[] {token}, new int[] {next++}, AttentionShape.CAUSAL)
                        .withLogitRows(0))).lastLogits(0);
                rows.add(last);
            }
        }
        return rows;
    }

    /** The same with the passages attached from {@code cache}: computed into it when missing, as RagTask does. */
    static List<float[]> attached(LanguageModel model, PassageCache cache, int[] prefix, List<int[]> passages, int[] question, int steps) {
        List<float[]> rows = new ArrayList<>();
        try (KvSequence kv = model.newSequence()) {
            if (prefix.length > 0) {
                model.forward(Batch.of(Batch.Entry.of(kv, prefix, positions(0, prefix.length), AttentionShape.CAUSAL)));
            }
            List<Integer> visible = new ArrayList<>();
            for (int p = 0; p < prefix.length; p++) {
                visible.add(p);
            }
            int longest = 0;
            for (int[] passage : passages) {
                longest = Math.max(longest, passage.length);
                KvSequence one = cache.acquire(prefix, passage);
                if (one == null) {
                    one = model.newSequence();
                    int[] rowsOf = new int[prefix.length + passage.length];
                    System.arraycopy(prefix, 0, rowsOf, 0, prefix.length);
                    System.arraycopy(passage, 0, rowsOf, prefix.length, passage.length);
                    model.forward(Batch.of(Batch.Entry.of(one, rowsOf, positions(0, rowsOf.length), AttentionShape.CAUSAL)));
                    cache.offer(prefix, passage, one);
                }
                int start = kv.attach(one);
                one.close();
                for (int p = 0; p < passage.length; p++) {
                    visible.add(start + prefix.length + p);
                }
            }
            int questionStart = kv.padToBlock();
            int q = prefix.length + longest;
            ForwardResult r = model.forward(Batch.of(Batch.Entry.of(kv, question, positions(q, question.length),
                    sparse(visible, questionStart, kv.length())).withLogitRows(question.length - 1)));
            float[] last = r.lastLogits(0);
            rows.add(last);
            int next = q + question.length;
            for (int s = 0; s < steps; s++) {
                int token = Sampler.argmax(last);
                last = model.forward(Batch.of(Batch.Entry.of(kv, new int[] {token}, new int[] {next++},
                        sparse(visible, questionStart, kv.length())).withLogitRows(0))).lastLogits(0);
                rows.add(last);
            }
        }
        return rows;
    }

    static AttentionShape sparse(List<Integer> passages, int from, int to) {
        int[] cached = new int[passages.size() + to - from];
        for (int i = 0; i < passages.size(); i++) {
            cached[i] = passages.get(i);
        }
        for (int i = from; i < to; i++) {
            cached[passages.size() + i - from] = i;
        }
        return new AttentionShape.SparsePrefix(cached);
    }

    @Test
    void attachedPassagesGiveTheLogitsOfAOnePassSegmentPrefillBitForBit() {
        int[] question = model.tokenizer().encode(QUESTION);
        for (int[] prefix : new int[][] {{}, SYSTEM}) {
            List<int[]> passages = passages(0, 1, 2);
            List<float[]> expected = onePass(model, prefix, passages, question, 6);
            try (PassageCache cache = new PassageCache(model, 1000)) {
                List<float[]> first = attached(model, cache, prefix, passages, question, 6);   // computed
                List<float[]> again = attached(model, cache, prefix, passages, question, 6);   // from the cache
                assertEquals(3, cache.size());
                assertEquals(3, cache.hits());
                for (int i = 0; i < expected.size(); i++) {
                    assertArrayEquals(expected.get(i), first.get(i), "row " + i + " with a " + prefix.length + "-token prefix");
                    assertArrayEquals(expected.get(i), again.get(i), "row " + i + " from the cache");
                }
            }
            assertEquals(0, model.kvCache().usedBlocks(), "everything returned to the pool");
        }
    }

    @Test
    void ragDecodingIsTheOnePassReferenceTokenForToken() {
        int[] question = model.tokenizer().encode(QUESTION);
        List<int[]> passages = passages(2, 0, 1);
        List<float[]> reference = onePass(model, SYSTEM, passages, question, 15);
        try (PassageCache cache = new PassageCache(model, 1000)) {
            RagDecoding rag = new RagDecoding(model, cache, q -> passages).withSystemPrefix(SYSTEM);
            for (int round = 0; round < 2; round++) {
                GenerationRequest greedy = new GenerationRequest(QUESTION, null, 16, SamplingParams.greedy(), List.of(), List.of(), 5, 0);
                GenerationResult r = rag.generate(greedy);
                assertEquals(16, r.generatedIds().length);
                for (int i = 0; i < 16; i++) {
                    assertEquals(Sampler.argmax(reference.get(i)), r.generatedIds()[i], "token " + i + " in round " + round);
                    TokenEvent e = r.logprobs().get(i);
                    float[] logSoftmax = dev.tandem.decoding.sampling.LogProbs.logSoftmax(reference.get(i));
                    assertEquals(logSoftmax[e.token()], e.logprob(), "the chosen token's logprob is the reference's, bit for bit");
                }
                int promptTokens = SYSTEM.length + passages.stream().mapToInt(p -> p.length).sum() + question.length;
                assertEquals(promptTokens, r.usage().promptTokens(), "the prompt counts every token attended to");
                assertEquals("rag", r.decodeStats().method());
            }
            assertEquals(3, cache.misses());
            assertEquals(3, cache.hits(), "the second round found every passage cached");
            assertEquals(cache.blocks(), model.kvCache().usedBlocks(), "only the cache holds blocks between requests");
            cache.clear();
            assertEquals(0, model.kvCache().usedBlocks());
        }
    }

    @Test
    void evictedPassagesStayUntilTheirLastHolderLetsGo() {
        try (PassageCache cache = new PassageCache(model, 1000)) {
            int[] question = model.tokenizer().encode(QUESTION);
            List<int[]> passages = passages(1);
            attached(model, cache, SYSTEM, passages, question, 0);
            int cachedBlocks = cache.blocks();
            assertEquals(cachedBlocks, model.kvCache().usedBlocks());
            KvSequence holder = model.newSequence();
            KvSequence passage = cache.acquire(SYSTEM, passages.get(0));
            holder.attach(passage);
            passage.close();
            cache.clear();
            assertEquals(cachedBlocks, model.kvCache().usedBlocks(), "a sequence still holds the evicted passage");
            holder.close();
            assertEquals(0, model.kvCache().usedBlocks());
        }
        // A small cache evicts the least recently used beyond its size.
        int largest = model.kvCache().blocksNeeded(SYSTEM.length + passages(1).get(0).length);
        try (PassageCache small = new PassageCache(model, largest)) {
            int[] question = model.tokenizer().encode(QUESTION);
            attached(model, small, SYSTEM, passages(0, 1, 2), question, 0);
            assertTrue(small.blocks() <= largest, small.blocks() + " blocks");
            assertTrue(small.size() < 3);
            assertEquals(small.blocks(), model.kvCache().usedBlocks());
        }
        assertEquals(0, model.kvCache().usedBlocks());
    }

    @Test
    void theEngineBatchesRagRequestsWithOthersAndGetsTheirSoloResults() throws Exception {
        int[][] orders = {{0, 1, 2}, {2, 1}, {1}, {0, 2}};
        List<GenerationResult> solo = new ArrayList<>();
        try (PassageCache cache = new PassageCache(model, 1000)) {
            for (int[] order : orders) {
                solo.add(new RagDecoding(model, cache, q -> passages(order)).withSystemPrefix(SYSTEM).generate(request(order.length)));
            }
            cache.clear();
            for (int budget : new int[] {Integer.MAX_VALUE, 24}) {
                try (Engine engine = new Engine(model, Engine.Options.defaults().withMaxPrefillTokensPerStep(budget))) {
                    List<EngineHandle> handles = new ArrayList<>();
                    EngineHandle plain = engine.submit(GenerationRequest.of("ROMEO:"));
                    for (int[] order : orders) {
                        handles.add(engine.submit(request(order.length),
                                new RagDecoding(model, cache, q -> passages(order)).withSystemPrefix(SYSTEM), e -> { }));
                    }
                    for (int i = 0; i < orders.length; i++) {
                        assertArrayEquals(solo.get(i).generatedIds(), handles.get(i).result().generatedIds(),
                                "request " + i + " with a prefill budget of " + budget);
                    }
                    assertEquals(new dev.tandem.decoding.Generator(model).generate(GenerationRequest.of("ROMEO:")).text(),
                            plain.result().text());
                }
                cache.clear();
                assertEquals(0, model.kvCache().usedBlocks(), "budget " + budget);
            }
        }
    }

    @Test
    void cachedPassagesNeverKeepTheEngineFromAdmittingARequest() throws Exception {
        // 16 blocks in all; the cached passages take about half, a request needs 13.
        try (LanguageModel small = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withKvTokens(256));
             PassageCache cache = new PassageCache(small, 16)) {
            int[] question = small.tokenizer().encode(QUESTION);
            attached(small, cache, SYSTEM, passages(small, 0, 1, 2), question, 0);
            assertTrue(cache.blocks() >= 6, cache.blocks() + " blocks cached");
            assertEquals(cache.blocks(), small.kvCache().usedBlocks());
            GenerationRequest big = GenerationRequest.of("ROMEO:").withMaxTokens(200);
            GenerationResult expected;
            try (Engine engine = new Engine(small)) {
                EngineHandle h = engine.submit(big);
                expected = org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(120),
                        () -> h.result(), "the request waited for blocks the passage cache kept");
            }
            assertTrue(cache.evictions() > 0);
            assertEquals(cache.blocks(), small.kvCache().usedBlocks(), "what the cache still holds, nothing else");
            assertArrayEquals(new dev.tandem.decoding.Generator(small).generate(big).generatedIds(), expected.generatedIds());
        }
    }

    static GenerationRequest request(int seed) {
        return new GenerationRequest(QUESTION, null, 12, SamplingParams.greedy(), List.of(), List.of(), 0, seed);
    }

    @Test
    void passagesThatDoNotFitTheContextGetOneSentence() {
        try (PassageCache cache = new PassageCache(model, 100)) {
            int[] longPassage = new int[model.config().maxContext()];
            Arrays.fill(longPassage, 100);
            RagDecoding rag = new RagDecoding(model, cache, q -> List.of(longPassage));
            TandemException e = assertThrows(TandemException.class, () -> rag.task(GenerationRequest.of(QUESTION)));
            assertTrue(e.getMessage().startsWith("passage 1 has 1024 tokens"), e.getMessage());
            assertTrue(e.getMessage().contains("context of 1024 tokens"), e.getMessage());

            int[] half = Arrays.copyOf(longPassage, 400);
            RagDecoding three = new RagDecoding(model, cache, q -> List.of(half, half, half));
            e = assertThrows(TandemException.class, () -> three.task(GenerationRequest.of(QUESTION)));
            assertTrue(e.getMessage().startsWith("3 passages with the prefix and the question hold"), e.getMessage());

            RagDecoding foreign = new RagDecoding(model, cache, q -> List.of(new int[] {5000}));
            e = assertThrows(TandemException.class, () -> foreign.task(GenerationRequest.of(QUESTION)));
            assertTrue(e.getMessage().contains("outside the vocabulary of 2048"), e.getMessage());
            assertEquals(0, model.kvCache().usedBlocks(), "nothing was taken");
        }
    }
}
