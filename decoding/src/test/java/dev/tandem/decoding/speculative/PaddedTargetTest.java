package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.synth.PaddedCheckpoints;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * Every lossless method's greedy output equals plain greedy decoding on a padded target too: bard-m
 * grown (`tandem synth --pad`) to wider and deeper layers with a larger query group, drafted by bard-s.
 * The padded target computes bard-m's function, so its plain greedy output is bard-m's as well.
 */
class PaddedTargetTest {
    private static final String SHAPE = """
            {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 6,
             "num_attention_heads": 8, "num_key_value_heads": 2}
            """;
    private static final Function<String, dev.tandem.decoding.GenerationRequest> REQUEST =
            p -> SpeculativeFixtures.request(p).withMaxTokens(24);

    @TempDir
    static Path tmp;
    static LanguageModel padded;
    static LanguageModel draft;
    static List<String> prompts;
    static List<GenerationResult> plain;

    @BeforeAll
    static void load() throws IOException {
        Path dir = tmp.resolve("bard-m-padded");
        PaddedCheckpoints.write(PaddedCheckpoints.Spec.ofConfigJson(TestModels.model("bard-m"), "test-shape", SHAPE, DType.F32),
                dir, false, Progress.NONE);
        padded = ModelLoader.load(dir, ModelLoader.Options.defaults().withThreads(2));
        draft = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(padded.backend()));
        prompts = SpeculativeFixtures.goldenPromptsAnd(List.of());
        plain = SpeculativeFixtures.plainGreedy(padded, prompts, REQUEST);
    }

    @AfterAll
    static void close() {
        draft.close();
        padded.close();
    }

    @Test
    void paddedTargetsPlainGreedyIsTheSourcesAndEveryMethodReproducesIt() {
        try (LanguageModel source = ModelLoader.load(TestModels.model("bard-m"))) {
            List<GenerationResult> sourcePlain = SpeculativeFixtures.plainGreedy(source, prompts, REQUEST);
            for (int i = 0; i < prompts.size(); i++) {
                assertArrayEquals(sourcePlain.get(i).generatedIds(), plain.get(i).generatedIds(), "bard-m vs padded on " + prompts.get(i));
            }
        }
        List<DecodingStrategy> methods = List.of(
                new SpeculativeDecoding(padded, draft, 4),
                SpeculativeDecoding.adaptive(padded, draft),
                new PearlDecoding(padded, draft, 3),
                TreeDecoding.of(padded, draft),
                new PromptLookupDecoding(padded),
                new AdedDecoding(padded, TrigramTable.empty()),
                new LookaheadDecoding(padded));
        for (DecodingStrategy m : methods) {
            SpeculativeFixtures.assertSameAsPlain(m, prompts, plain, REQUEST, m.name() + " on padded bard-m",
                    SpeculativeFixtures.NO_EXTRA_CHECKS);
        }
    }
}
