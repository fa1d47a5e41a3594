package dev.tandem.decoding.diffusion;

import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Canvases of mixed prompts, lengths, blocks, rules and temperatures share the Engine's passes and each comes out as it does
 * alone, bit for bit (the passes are batch-invariant and a canvas's decisions read only its own rows).
 */
class DiffusionEngineTest {

    @Test
    void aBatchOfCanvasesEqualsSeparateRuns() throws IOException {
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-dlm"))) {
            List<String> prompts = List.of("ROMEO:", "First Citizen:\nBefore we proceed", "KING HENRY VI:\nWhat", "JULIET:\nO Romeo",
                    "Prince Andrew said", "MENENIUS:\nI tell you", "GLOUCESTER:\nNow is");
            List<DiffusionDecoding> methods = List.of(
                    new DiffusionDecoding(model, DiffusionParams.lowConfidence(16)),
                    new DiffusionDecoding(model, DiffusionParams.lowConfidence(24).withBlockLength(8).withSteps(12)),
                    new DiffusionDecoding(model, DiffusionParams.lowConfidence(32).withBlockLength(8).withThreshold(0.15)),
                    new DiffusionDecoding(model, DiffusionParams.lowConfidence(16).withRule(UnmaskRule.ENTROPY)),
                    new DiffusionDecoding(model, DiffusionParams.lowConfidence(20).withBlockLength(10).withRule(UnmaskRule.MARGIN)),
                    new DiffusionDecoding(model, DiffusionParams.lowConfidence(16).withRule(UnmaskRule.RANDOM)),
                    new DiffusionDecoding(model, DiffusionParams.lowConfidence(24).withBlockLength(8).withCcdWindow(2)));
            List<GenerationRequest> requests = new ArrayList<>();
            List<GenerationResult> alone = new ArrayList<>();
            for (int i = 0; i < prompts.size(); i++) {
                GenerationRequest r = GenerationRequest.of(prompts.get(i)).withStreamId(i);
                if (i % 3 == 0) { // Gumbel noise, keyed by seed, stream, step, position and token
                    r = r.withSampling(dev.tandem.decoding.sampling.SamplingParams.greedy().withTemperature(1.5f).withSeed(40 + i));
                }
                requests.add(r);
                alone.add(methods.get(i).generate(r));
            }
            try (Engine engine = new Engine(model, Engine.Options.defaults())) {
                List<EngineHandle> handles = new ArrayList<>();
                for (int i = 0; i < prompts.size(); i++) {
                    handles.add(engine.submit(requests.get(i), methods.get(i), null));
                }
                for (int i = 0; i < prompts.size(); i++) {
                    GenerationResult together = handles.get(i).result();
                    assertArrayEquals(alone.get(i).generatedIds(), together.generatedIds(), "canvas " + i);
                    assertEquals(alone.get(i).text(), together.text(), "canvas " + i);
                    assertEquals(alone.get(i).decodeStats().targetForwardPasses(), together.decodeStats().targetForwardPasses());
                }
                assertEquals(0, engine.stats().reservedBlocks());
            }
            assertEquals(0, model.kvCache().usedBlocks(), "every canvas freed its blocks");
        }
    }
}
