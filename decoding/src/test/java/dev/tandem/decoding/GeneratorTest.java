package dev.tandem.decoding;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.decoding.sampling.LogProbs;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GeneratorTest {
    private static LanguageModel model;
    private static Generator generator;

    @BeforeAll
    static void load() {
        model = ModelLoader.load(TestModels.model("bard-l"));
        generator = new Generator(model);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).asInt();
        }
        return out;
    }

    @Test
    void greedyGenerationReproducesEveryGoldenPath() throws IOException {
        for (String name : new String[] {"bard-s", "bard-m", "bard-l"}) {
            try (LanguageModel m = ModelLoader.load(TestModels.model(name))) {
                JsonNode golden = new ObjectMapper().readTree(TestModels.model(name).resolve("golden.json").toFile());
                for (JsonNode c : golden.get("cases")) {
                    int[] expected = ints(c.get("greedy_ids"));
                    GenerationResult r = new Generator(m).generate(GenerationRequest.of(c.get("prompt").asText())
                            .withMaxTokens(expected.length).withEosTokenIds(List.of()));
                    assertArrayEquals(ints(c.get("prompt_ids")), r.promptIds(), name);
                    assertArrayEquals(expected, r.generatedIds(), name + " " + c.get("prompt").asText());
                    assertEquals(FinishReason.MAX_TOKENS, r.finishReason());
                    assertEquals(new Usage(r.promptIds().length, expected.length), r.usage());
                    assertEquals(m.tokenizer().decode(expected), r.text());
                }
            }
        }
    }

    @Test
    void streamedDeltasConcatenateToTheFinalText() {
        StringBuilder streamed = new StringBuilder();
        List<Integer> tokens = new ArrayList<>();
        GenerationResult r = generator.generate(GenerationRequest.of("First Citizen:").withMaxTokens(40)
                .withSampling(SamplingParams.greedy().withTemperature(0.9f).withSeed(3)), e -> {
            streamed.append(e.textDelta());
            tokens.add(e.token());
        });
        assertEquals(r.text(), streamed.toString());
        assertArrayEquals(tokens.stream().mapToInt(Integer::intValue).toArray(), r.generatedIds());
        assertEquals(model.tokenizer().decode(r.generatedIds()), r.text());
    }

    @Test
    void stopStringEndsGenerationIsCutFromTheTextAndNeverStreamed() {
        GenerationResult free = generator.generate(GenerationRequest.of("ROMEO:").withMaxTokens(40).withEosTokenIds(List.of()));
        String full = free.text();
        // A stop string that starts mid-way and spans several characters of the greedy text.
        String stop = full.substring(12, 17);
        int at = full.indexOf(stop);
        StringBuilder streamed = new StringBuilder();
        GenerationResult r = generator.generate(GenerationRequest.of("ROMEO:").withMaxTokens(40).withEosTokenIds(List.of())
                .withStop(List.of("never appears \u2603", stop)), e -> streamed.append(e.textDelta()));
        assertEquals(FinishReason.STOP_STRING, r.finishReason());
        assertEquals(full.substring(0, at), r.text());
        assertEquals(r.text(), streamed.toString());
        assertFalse(streamed.toString().contains(stop));
        assertTrue(r.generatedIds().length < free.generatedIds().length);
        assertArrayEquals(Arrays.copyOf(free.generatedIds(), r.generatedIds().length), r.generatedIds());
    }

    @Test
    void anyTokenOfTheEosListEndsGeneration() {
        GenerationResult free = generator.generate(GenerationRequest.of("ROMEO:").withMaxTokens(12).withEosTokenIds(List.of()));
        int eos = free.generatedIds()[5];
        int firstAt = 0;
        while (free.generatedIds()[firstAt] != eos) {
            firstAt++;
        }
        GenerationResult r = generator.generate(GenerationRequest.of("ROMEO:").withMaxTokens(12).withEosTokenIds(List.of(99999, eos)));
        assertEquals(FinishReason.EOS, r.finishReason());
        assertArrayEquals(Arrays.copyOf(free.generatedIds(), firstAt + 1), r.generatedIds());
        assertEquals(model.tokenizer().decode(Arrays.copyOf(free.generatedIds(), firstAt)), r.text());
        assertEquals(firstAt + 1, r.usage().completionTokens());
    }

    @Test
    void sameSeedRepeatsTokensAndDifferentSeedsDiffer() {
        GenerationRequest base = GenerationRequest.of("KING HENRY VI:").withMaxTokens(30).withEosTokenIds(List.of());
        SamplingParams sampling = new SamplingParams(1.0f, 50, 0.95f, 0.0f, 1.1f, 1234);
        GenerationResult a = generator.generate(base.withSampling(sampling));
        GenerationResult b = generator.generate(base.withSampling(sampling));
        GenerationResult c = generator.generate(base.withSampling(sampling.withSeed(1235)));
        GenerationResult d = generator.generate(base.withSampling(sampling).withStreamId(7));
        assertArrayEquals(a.generatedIds(), b.generatedIds());
        assertFalse(Arrays.equals(a.generatedIds(), c.generatedIds()), "seeds 1234 and 1235 gave the same 30 tokens");
        assertFalse(Arrays.equals(a.generatedIds(), d.generatedIds()), "stream ids 0 and 7 gave the same 30 tokens");
    }

    @Test
    void logprobsAreTheRawLogSoftmaxAndTopListsTheMostLikely() {
        int[] prompt = model.tokenizer().encode("ROMEO:");
        float[] logits;
        try (KvSequence seq = model.newSequence()) {
            logits = model.forward(Batch.of(Batch.Entry.continuation(seq, prompt))).lastLogits(0);
        }
        GenerationResult r = generator.generate(GenerationRequest.of("ROMEO:").withMaxTokens(3).withLogprobs(3));
        TokenEvent first = r.logprobs().getFirst();
        float[] expected = LogProbs.logSoftmax(logits);
        assertEquals(expected[first.token()], first.logprob(), 0f);
        assertEquals(3, first.topLogprobs().size());
        assertEquals(first.token(), first.topLogprobs().getFirst().token(), "greedy token is the most likely");
        assertTrue(first.topLogprobs().get(1).logprob() <= first.topLogprobs().getFirst().logprob());
        GenerationResult none = generator.generate(GenerationRequest.of("ROMEO:").withMaxTokens(3));
        assertTrue(Float.isNaN(none.logprobs().getFirst().logprob()));
        assertTrue(none.logprobs().getFirst().topLogprobs().isEmpty());
    }

    /**
     * Greedy decoding that reads nothing else from the logits takes each token from the backend's argmax
     * (only the id leaves the backend); asking for logprobs reads the rows and samples on the host. Both give
     * the same tokens.
     */
    @Test
    void greedyTokensFromTheBackendEqualGreedyTokensFromTheLogits() {
        for (String prompt : new String[] {"ROMEO:", "First Citizen:\nBefore we proceed", "\n"}) {
            GenerationResult ids = generator.generate(GenerationRequest.of(prompt).withMaxTokens(24));
            GenerationResult logits = generator.generate(GenerationRequest.of(prompt).withMaxTokens(24).withLogprobs(1));
            assertArrayEquals(logits.generatedIds(), ids.generatedIds(), prompt);
            assertEquals(logits.text(), ids.text(), prompt);
        }
    }

    @Test
    void promptLongerThanTheContextIsRejectedNamingTheLimit() {
        int[] ids = new int[model.config().maxContext() + 1];
        Arrays.fill(ids, 258);
        TandemException e = assertThrows(TandemException.class, () -> generator.generate(GenerationRequest.ofIds(ids)));
        assertTrue(e.getMessage().contains("1025 tokens") && e.getMessage().contains("max_position_embeddings")
                && e.getMessage().contains("1024"), e.getMessage());
        assertEquals(0, model.kvCache().usedBlocks(), "nothing left allocated");
    }

    @Test
    void generationStopsWhenTheContextIsFull() {
        int[] ids = new int[model.config().maxContext() - 3];
        Arrays.fill(ids, 258);
        GenerationResult r = generator.generate(GenerationRequest.ofIds(ids).withMaxTokens(10).withEosTokenIds(List.of()));
        assertEquals(FinishReason.CONTEXT_FULL, r.finishReason());
        assertEquals(3, r.generatedIds().length);
    }

    @Test
    void closingAStreamEarlyCancelsItAndFreesItsCache() {
        try (Generation g = generator.stream(GenerationRequest.of("ROMEO:").withMaxTokens(20))) {
            g.next();
            g.next();
            assertTrue(model.kvCache().usedBlocks() > 0);
        }
        assertEquals(0, model.kvCache().usedBlocks());
        Generation g = generator.stream(GenerationRequest.of("ROMEO:").withMaxTokens(2));
        g.next();
        g.next();
        assertFalse(g.hasNext());
        assertEquals(FinishReason.MAX_TOKENS, g.result().finishReason());
        assertNotEquals(0, g.result().stats().prefillMillis());
    }
}
