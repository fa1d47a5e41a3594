package dev.tandem.decoding;

import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** generation_config.json supplies the defaults: sampling knobs, token limit and the EOS list. */
class GenerationConfigDefaultsTest {

    @TempDir
    Path tmp;

    private Path bardSWith(String generationConfig) throws IOException {
        Path dir = TestModels.copyOf("bard-s", tmp.resolve("model"));
        Files.writeString(dir.resolve("generation_config.json"), generationConfig);
        return dir;
    }

    @Test
    void samplingDefaultsComeFromGenerationConfigWhenDoSampleIsTrue() throws IOException {
        Path dir = bardSWith("{\"do_sample\": true, \"temperature\": 0.6, \"top_k\": 20, \"top_p\": 0.9,"
                + " \"repetition_penalty\": 1.2, \"max_new_tokens\": 7}");
        try (LanguageModel model = ModelLoader.load(dir)) {
            GenerationRequest r = GenerationRequest.withModelDefaults(model, "ROMEO:", 5);
            assertEquals(new SamplingParams(0.6f, 20, 0.9f, 0f, 1.2f, 5), r.sampling());
            assertEquals(7, r.maxTokens());
        }
    }

    @Test
    void withoutDoSampleTheDefaultIsGreedyButKeepsTheRepetitionPenalty() throws IOException {
        Path dir = bardSWith("{\"temperature\": 0.6, \"top_p\": 0.9, \"repetition_penalty\": 1.3}");
        try (LanguageModel model = ModelLoader.load(dir)) {
            GenerationRequest r = GenerationRequest.withModelDefaults(model, "ROMEO:", 5);
            assertEquals(SamplingParams.greedy().withRepetitionPenalty(1.3f).withSeed(5), r.sampling());
            assertEquals(GenerationRequest.DEFAULT_MAX_TOKENS, r.maxTokens());
        }
    }

    @Test
    void everyTokenOfTheGenerationConfigEosListEndsGeneration() throws IOException {
        int firstGreedy;
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-s"))) {
            firstGreedy = new Generator(model).generate(GenerationRequest.of("ROMEO:").withMaxTokens(1)).generatedIds()[0];
        }
        Path dir = bardSWith("{\"eos_token_id\": [2047, " + firstGreedy + "]}");
        try (LanguageModel model = ModelLoader.load(dir)) {
            GenerationResult r = new Generator(model).generate(GenerationRequest.of("ROMEO:").withMaxTokens(20));
            assertEquals(FinishReason.EOS, r.finishReason());
            assertArrayEquals(new int[] {firstGreedy}, r.generatedIds());
            assertEquals("", r.text());
        }
    }
}
