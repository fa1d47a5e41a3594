package dev.tandem.transformer.config;

import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GenerationConfigTest {

    @TempDir
    Path dir;

    @Test
    void absentFileLeavesEverythingUnset() {
        GenerationConfig g = GenerationConfig.load(dir);
        assertEquals(GenerationConfig.EMPTY, g);
        assertEquals(List.of(), g.eosTokenIds());
        assertNull(g.bosTokenId());
        assertNull(g.doSample());
        assertNull(g.temperature());
        assertNull(g.topK());
        assertNull(g.topP());
        assertNull(g.minP());
        assertNull(g.repetitionPenalty());
        assertNull(g.maxNewTokens());
        // the bundled models ship none
        assertEquals(GenerationConfig.EMPTY, GenerationConfig.load(TestModels.model("bard-s")));
    }

    @Test
    void everyFieldIsReadAndEosMayBeAList() throws IOException {
        Files.writeString(dir.resolve("generation_config.json"), """
                {"bos_token_id": 128000, "eos_token_id": [128001, 128009], "do_sample": true,
                 "temperature": 0.6, "top_k": 20, "top_p": 0.9, "min_p": 0.05, "repetition_penalty": 1.1,
                 "max_new_tokens": 256, "transformers_version": "4.45.0"}""");
        GenerationConfig g = GenerationConfig.load(dir);
        assertEquals(new GenerationConfig(List.of(128001, 128009), 128000, true, 0.6f, 20, 0.9f, 0.05f, 1.1f, 256), g);
    }

    @Test
    void absentFieldsAreNullAndAnIntegerEosBecomesAList() throws IOException {
        Files.writeString(dir.resolve("generation_config.json"), "{\"eos_token_id\": 2, \"temperature\": 1}");
        GenerationConfig g = GenerationConfig.load(dir);
        assertEquals(List.of(2), g.eosTokenIds());
        assertEquals(1.0f, g.temperature());
        assertNull(g.bosTokenId());
        assertNull(g.doSample());
        assertNull(g.topK());
        assertNull(g.topP());
        assertNull(g.minP());
        assertNull(g.repetitionPenalty());
        assertNull(g.maxNewTokens());
    }

    @Test
    void malformedFileIsReportedByName() throws IOException {
        Files.writeString(dir.resolve("generation_config.json"), "{\"top_k\": }");
        TandemException e = assertThrows(TandemException.class, () -> GenerationConfig.load(dir));
        assertTrue(e.getMessage().startsWith("generation_config.json is not valid JSON"), e.getMessage());
        assertTrue(e.getMessage().endsWith("."), e.getMessage());
    }

    @Test
    void mistypedFieldIsReportedByFileAndName() throws IOException {
        Files.writeString(dir.resolve("generation_config.json"), "{\"top_k\": \"twenty\"}");
        TandemException e = assertThrows(TandemException.class, () -> GenerationConfig.load(dir));
        assertTrue(e.getMessage().contains("generation_config.json"), e.getMessage());
        assertTrue(e.getMessage().contains("top_k"), e.getMessage());
    }

    @Test
    void missingDirectoryIsReported() {
        Path nowhere = dir.resolve("absent");
        TandemException e = assertThrows(TandemException.class, () -> GenerationConfig.load(nowhere));
        assertEquals("model directory not found: " + nowhere + ".", e.getMessage());
    }
}
