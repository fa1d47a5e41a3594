package dev.tandem.transformer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every case of every shipped model's golden.json (float32 PyTorch outputs): the prompt's ids, the
 * last prompt position's logits within 1e-4, and the greedy path exactly.
 */
class GoldenModelTest {

    static Stream<Arguments> cases() throws IOException {
        List<Arguments> out = new ArrayList<>();
        for (String name : new String[] {"bard-s", "bard-m", "bard-l"}) {
            JsonNode golden = new ObjectMapper().readTree(TestModels.model(name).resolve("golden.json").toFile());
            int i = 0;
            for (JsonNode c : golden.get("cases")) {
                out.add(Arguments.of(name, i++, c));
            }
        }
        assertTrue(out.size() >= 9, "expected golden cases for all three models");
        return out.stream();
    }

    static int[] ints(JsonNode array) {
        int[] a = new int[array.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = array.get(i).asInt();
        }
        return a;
    }

    @ParameterizedTest(name = "{0} case {1}")
    @MethodSource("cases")
    void matchesPyTorchReference(String name, int index, JsonNode c) {
        Path dir = TestModels.model(name);
        try (LanguageModel model = ModelLoader.load(dir)) {
            int[] promptIds = ints(c.get("prompt_ids"));
            assertArrayEquals(promptIds, model.tokenizer().encode(c.get("prompt").asText()), "tokenizer ids");

            JsonNode expected = c.get("last_logits");
            try (KvSequence seq = model.newSequence()) {
                float[] logits = model.forward(Batch.of(Batch.Entry.continuation(seq, promptIds))).lastLogits(0);
                assertEquals(expected.size(), logits.length);
                double maxDiff = 0;
                for (int i = 0; i < logits.length; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(logits[i] - expected.get(i).asDouble()));
                }
                System.out.printf("%s case %d: max abs logit difference %.3g%n", name, index, maxDiff);
                assertTrue(maxDiff <= 1e-4, name + " case " + index + ": max |logit − reference| = " + maxDiff);

                int[] greedy = ints(c.get("greedy_ids"));
                int[] got = new int[greedy.length];
                for (int step = 0; step < greedy.length; step++) {
                    got[step] = argmax(logits);
                    logits = model.forward(Batch.of(Batch.Entry.continuation(seq, got[step]))).lastLogits(0);
                }
                assertArrayEquals(greedy, got, name + " case " + index + " greedy path");
            }
        }
    }

    static int argmax(float[] x) {
        int best = 0;
        for (int i = 1; i < x.length; i++) {
            if (x[i] > x[best]) {
                best = i;
            }
        }
        return best;
    }
}
