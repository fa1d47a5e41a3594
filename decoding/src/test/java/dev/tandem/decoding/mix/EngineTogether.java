package dev.tandem.decoding.mix;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The mixing methods' Engine check: requests of several methods decoded together give each its lone tokens. */
final class EngineTogether {
    private EngineTogether() {
    }

    /** {@code count} requests over {@code prompts}, every other one sampled (seed 100 + i), each on its own stream. */
    static List<GenerationRequest> requests(List<String> prompts, int count, int firstMaxTokens, SamplingParams sampled) {
        List<GenerationRequest> requests = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            GenerationRequest r = GenerationRequest.of(prompts.get(i % prompts.size())).withMaxTokens(firstMaxTokens + i).withStreamId(i);
            requests.add(i % 2 == 0 ? r : r.withSampling(sampled.withSeed(100 + i)));
        }
        return requests;
    }

    /**
     * Request i decoded by {@code methods[i % methods.size()]} alone, then all of them through one Engine on {@code model}
     * (prompts chunked by 8 rows): the same tokens, text and method name.
     */
    static void assertTogetherAsAlone(LanguageModel model, List<DecodingStrategy> methods, List<GenerationRequest> requests) {
        List<GenerationResult> alone = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
            alone.add(methods.get(i % methods.size()).generate(requests.get(i)));
        }
        try (Engine engine = new Engine(model, Engine.Options.defaults().withMaxPrefillTokensPerStep(8))) {
            List<EngineHandle> handles = new ArrayList<>();
            for (int i = 0; i < requests.size(); i++) {
                handles.add(engine.submit(requests.get(i), methods.get(i % methods.size()), null));
            }
            for (int i = 0; i < requests.size(); i++) {
                GenerationResult together = handles.get(i).result();
                assertArrayEquals(alone.get(i).generatedIds(), together.generatedIds(), "request " + i);
                assertEquals(alone.get(i).text(), together.text(), "request " + i);
                assertEquals(methods.get(i % methods.size()).name(), handles.get(i).method());
            }
        }
    }
}
