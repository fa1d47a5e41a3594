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

/** Checks the mixing methods' tests share: the neutral settings are plain decoding; the Engine gives lone results. */
final class MixChecks {
    private MixChecks() {
    }

    /** Greedy (with and without logprobs) and sampled (top-p; repetition penalty) requests of {@code maxTokens} for {@code prompt}. */
    static List<GenerationRequest> identityRequests(String prompt, int maxTokens) {
        GenerationRequest greedy = GenerationRequest.of(prompt).withMaxTokens(maxTokens).withLogprobs(3);
        return List.of(greedy, greedy.withLogprobs(0),
                greedy.withSampling(SamplingParams.greedy().withTemperature(0.9f).withTopP(0.95f).withSeed(17)).withStreamId(3),
                greedy.withSampling(SamplingParams.greedy().withTemperature(1.2f).withRepetitionPenalty(1.3f).withSeed(5)));
    }

    /**
     * For each prompt and {@link #identityRequests}, {@code method} gives exactly what plain decoding of {@code model} gives
     * for {@code plainRequest(prompt)} with the same settings: prompt ids, tokens, text, finish reason and log-probabilities.
     */
    static void assertPlain(LanguageModel model, List<String> prompts, int maxTokens, DecodingStrategy method,
                            java.util.function.Function<String, GenerationRequest> plainRequest) {
        for (String prompt : prompts) {
            for (GenerationRequest r : identityRequests(prompt, maxTokens)) {
                GenerationResult got = method.generate(r);
                GenerationRequest p = plainRequest.apply(prompt);
                GenerationResult plain = new dev.tandem.decoding.Generator(model).generate(new GenerationRequest(p.prompt(), p.promptIds(),
                        r.maxTokens(), r.sampling(), r.stop(), r.eosTokenIds(), r.logprobs(), r.streamId()));
                String what = method.name() + " \"" + prompt + "\" " + r.sampling() + " logprobs " + r.logprobs();
                assertArrayEquals(plain.promptIds(), got.promptIds(), what);
                assertArrayEquals(plain.generatedIds(), got.generatedIds(), what);
                assertEquals(plain.text(), got.text(), what);
                assertEquals(plain.finishReason(), got.finishReason(), what);
                assertEquals(plain.logprobs(), got.logprobs(), what + ": the same log-probabilities, bit for bit");
            }
        }
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
