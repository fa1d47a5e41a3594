package dev.tandem.fuzz;

import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;
import dev.tandem.transformer.tokenizer.GgufTokenizer;
import dev.tandem.transformer.weights.GgufCheckpoint;
import dev.tandem.transformer.weights.SafetensorsFile;
import dev.tandem.transformer.weights.WeightStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fuzzers start from valid files: every seed (an input not named {@code finding-*}, which are the
 * findings kept as regression inputs) is accepted by its parser, so that a seed broken by a change to
 * {@code make_seeds.py} or to a parser does not quietly turn a fuzzer into one that only explores
 * refusals.
 */
public class SeedsAreValidTest {
    @TempDir
    Path tmp;

    /** The seeds of fuzz test {@code test}'s {@code method}, found beside the class {@code test}. */
    public static List<Path> seeds(Class<?> test, String method) throws IOException, URISyntaxException {
        Path dir = Path.of(test.getResource(test.getSimpleName() + "Inputs/" + method).toURI());
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> seeds = files.filter(f -> !f.getFileName().toString().startsWith("finding-")).sorted().toList();
            assertFalse(seeds.isEmpty(), "no seeds in " + dir);
            return seeds;
        }
    }

    @Test
    void safetensorsSeedsOpenAndReadBack() throws Exception {
        for (Path seed : seeds(SafetensorsFuzzTest.class, "safetensors")) {
            try (SafetensorsFile f = SafetensorsFile.open(seed, true)) {
                assertFalse(f.names().isEmpty(), seed.toString());
                for (String name : f.names()) {
                    f.tensor(name);
                }
            }
        }
    }

    @Test
    void ggufSeedsLoadAsCheckpointsWithTheirTokenizers() throws Exception {
        for (Path seed : seeds(GgufFuzzTest.class, "gguf")) {
            try (GgufCheckpoint c = GgufCheckpoint.open(seed, true)) {
                assertEquals(1, c.config().numLayers(), seed.toString());
                for (String name : c.names()) {
                    c.tensor(name);
                }
                Tokenizer t = GgufTokenizer.fromMetadata(c.metadata(), seed.getFileName().toString());
                assertTrue(t.encode("ab a").length > 0, seed.toString());
            }
        }
    }

    @Test
    void shardIndexSeedsOpenEveryTensor() throws Exception {
        Path dir = ShardIndexFuzzTest.directory();
        for (Path seed : seeds(ShardIndexFuzzTest.class, "shardIndex")) {
            Files.copy(seed, dir.resolve(WeightStore.INDEX_FILE), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            try (WeightStore store = WeightStore.open(dir, false)) {
                assertFalse(store.names().isEmpty(), seed.toString());
                for (String name : store.names()) {
                    store.get(name);
                }
            }
        }
    }

    @Test
    void configSeedsLoad() throws Exception {
        for (Path seed : seeds(ModelConfigFuzzTest.class, "config")) {
            Files.copy(seed, tmp.resolve(ModelConfig.CONFIG_FILE), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            assertTrue(ModelConfig.load(tmp).numLayers() > 0, seed.toString());
        }
    }

    @Test
    void generationConfigSeedsLoad() throws Exception {
        for (Path seed : seeds(GenerationConfigFuzzTest.class, "generationConfig")) {
            Files.copy(seed, tmp.resolve(GenerationConfig.FILE), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            assertFalse(GenerationConfig.load(tmp).eosTokenIds().isEmpty(), seed.toString());
        }
    }

    @Test
    void tokenizerSeedsLoadAndRoundTrip() throws Exception {
        for (Path seed : seeds(TokenizerFuzzTest.class, "tokenizer")) {
            Tokenizer t = Tokenizers.load(seed);
            String text = "once upon a time, the king said"; // lower case: BERT's uncased tokenizer lowers it
            int[] ids = t.encode(text, false);
            assertTrue(ids.length > 0, seed.toString());
            assertEquals(text, t.decode(ids, false).strip(), seed.toString());
        }
    }

    @Test
    void passageIndexSeedsReadAndSearch() throws Exception {
        for (Path seed : seeds(PassageIndexFuzzTest.class, "passageIndex")) {
            dev.tandem.decoding.rag.PassageIndex index = dev.tandem.decoding.rag.PassageIndex.read(seed);
            assertTrue(index.size() > 0, seed.toString());
            PassageIndexFuzzTest.exercise(index);
        }
    }
}
