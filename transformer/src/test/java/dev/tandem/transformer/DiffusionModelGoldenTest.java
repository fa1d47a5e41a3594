package dev.tandem.transformer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * bard-dlm, the masked-diffusion checkpoint, loads as a bidirectional model with its mask token, and its
 * logits at the first masked position of a prompt followed by 32 masks equal PyTorch's (golden.json) within
 * 1e-4: every position attends to every other, whatever the entry's shape says.
 */
class DiffusionModelGoldenTest {

    @Test
    void initialLogitsAtTheFirstMaskedPositionMatchPyTorch() throws IOException {
        JsonNode golden = new ObjectMapper().readTree(TestModels.model("bard-dlm").resolve("golden.json").toFile());
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-dlm"))) {
            assertFalse(model.config().isCausal());
            assertEquals(2048, model.config().maskTokenId());
            for (JsonNode c : golden.get("cases")) {
                int[] prompt = TestModels.ints(c.get("prompt_ids"));
                int[] canvas = Arrays.copyOf(prompt, prompt.length + 32);
                Arrays.fill(canvas, prompt.length, canvas.length, 2048);
                try (KvSequence seq = model.newSequence()) {
                    float[] logits = model.forward(Batch.of(Batch.Entry.continuation(seq, canvas).withLogitRows(prompt.length)))
                            .logits(0, 0);
                    JsonNode expected = c.get("initial_logits_first_masked");
                    assertEquals(expected.size(), logits.length);
                    double max = 0;
                    for (int i = 0; i < logits.length; i++) {
                        max = Math.max(max, Math.abs(logits[i] - expected.get(i).asDouble()));
                    }
                    assertTrue(max <= 1e-4, c.get("prompt").asText() + ": max |logit - reference| = " + max);
                }
            }
        }
    }
}
