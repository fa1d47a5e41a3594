package dev.tandem.decoding;

import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** One model shared by several threads: each request gets what it gets alone, and no KV block leaks. */
class ConcurrentGenerationTest {

    @Test
    void requestsFromManyThreadsGiveTheirSequentialResults() throws Exception {
        String[] prompts = {"ROMEO:", "First Citizen:", "KING HENRY VI:\nWhat", "Pierre said", "JULIET:", "O, "};
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-l"))) {
            Generator generator = new Generator(model);
            List<GenerationRequest> requests = new ArrayList<>();
            for (int i = 0; i < prompts.length; i++) {
                requests.add(GenerationRequest.of(prompts[i]).withMaxTokens(24)
                        .withSampling(new SamplingParams(0.9f, 40, 0.95f, 0f, 1f, 99)).withStreamId(i));
            }
            List<int[]> sequential = new ArrayList<>();
            for (GenerationRequest r : requests) {
                sequential.add(generator.generate(r).generatedIds());
            }
            ExecutorService pool = Executors.newFixedThreadPool(prompts.length);
            try {
                List<Future<int[]>> futures = new ArrayList<>();
                for (GenerationRequest r : requests) {
                    futures.add(pool.submit(() -> generator.generate(r).generatedIds()));
                }
                for (int i = 0; i < prompts.length; i++) {
                    assertArrayEquals(sequential.get(i), futures.get(i).get(), "request " + i);
                }
            } finally {
                pool.shutdown();
            }
            assertEquals(0, model.kvCache().usedBlocks(), "every block returned");
        }
    }
}
