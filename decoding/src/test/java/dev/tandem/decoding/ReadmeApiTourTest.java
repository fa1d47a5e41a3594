package dev.tandem.decoding;

import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.speculative.SpeculativeDecoding;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The README's one-screen API tour, kept compiling and running (update both together). */
class ReadmeApiTourTest {

    @Test
    void readmeApiTourRuns() {
        StringBuilder printed = new StringBuilder();
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withDevice("cpu"));
             LanguageModel draft = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(model.backend()))) {
            Generator generator = new Generator(model);

            GenerationResult r = generator.generate(
                    GenerationRequest.of("ROMEO:")
                            .withMaxTokens(64)
                            .withSampling(new SamplingParams(0.8f, 50, 0.95f, 0f, 1.1f, /*seed*/ 42))
                            .withStop(List.of("\n\n"))
                            .withLogprobs(3),
                    token -> printed.append(token.textDelta()));
            assertEquals(r.text(), printed.toString());
            assertTrue(r.usage().completionTokens() > 0 && r.decodeTokensPerSecond() >= 0);

            StringBuilder streamed = new StringBuilder();
            try (Generation g = generator.stream(GenerationRequest.of("First Citizen:"))) {
                while (g.hasNext()) {
                    streamed.append(g.next().textDelta());
                }
                assertEquals(g.result().text(), streamed.toString());
            }

            try (Engine engine = new Engine(model)) {
                EngineHandle a = engine.submit(GenerationRequest.of("JULIET:").withMaxTokens(16));
                EngineHandle b = engine.submit(GenerationRequest.of("HAMLET:").withMaxTokens(16),
                        new SpeculativeDecoding(model, draft, 4), null);
                StringBuilder bText = new StringBuilder();
                while (b.hasNext()) {
                    bText.append(b.next().textDelta());
                }
                assertEquals(generator.generate(GenerationRequest.of("JULIET:").withMaxTokens(16)).text(), a.result().text());
                // Speculative decoding is lossless: greedy, it gives plain decoding's text.
                assertEquals(generator.generate(GenerationRequest.of("HAMLET:").withMaxTokens(16)).text(), bText.toString());
                assertEquals(bText.toString(), b.result().text());
                assertEquals("speculative", b.method());
                assertTrue(engine.stats().totalBlocks() > 0);
            }

            try (var seq = model.newSequence()) {
                int[] ids = model.tokenizer().encode("ROMEO:");
                float[] logits = model.forward(Batch.of(Batch.Entry.continuation(seq, ids))).lastLogits(0);
                assertEquals(model.config().vocabSize(), logits.length);
                var tree = Batch.Entry.of(seq, new int[] {ids[0], ids[1]}, new int[] {ids.length, ids.length},
                        new AttentionShape.Tree(new int[] {-1, -1})).withAllLogits();
                float[] second = model.forward(Batch.of(tree)).logits(0, 1);
                // The second candidate alone, as a plain continuation of the prompt, gives the same logits.
                try (var alone = model.newSequence()) {
                    model.forward(Batch.of(Batch.Entry.continuation(alone, ids)));
                    float[] expected = model.forward(Batch.of(Batch.Entry.continuation(alone, ids[1]))).lastLogits(0);
                    assertTrue(java.util.Arrays.equals(expected, second));
                }
            }
        }
    }
}
