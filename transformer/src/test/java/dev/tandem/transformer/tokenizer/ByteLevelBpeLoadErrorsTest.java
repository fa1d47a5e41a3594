package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Unusable tokenizer files fail with one sentence that names the file and what is wrong. */
class ByteLevelBpeLoadErrorsTest {
    private static final ObjectMapper JSON = BardTokenizerFiles.JSON;
    private static final Path BARD_S = BardTokenizerFiles.BARD_S;

    @TempDir
    Path tmp;

    @Test
    void missingFileIsReportedWithItsPath() {
        Path missing = tmp.resolve("nope").resolve("tokenizer.json");
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(missing));
        assertEquals("tokenizer file not found: " + missing + ".", e.getMessage());
    }

    @Test
    void malformedJsonNamesTheFileAndPosition() throws IOException {
        Path file = tmp.resolve("tokenizer.json");
        Files.writeString(file, "{\"model\": {\"type\": \"BPE\",, }");
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertOneSentenceNaming(file, e);
        assertTrue(e.getMessage().contains("not valid JSON at line 1"), e.getMessage());
    }

    @Test
    void unsupportedModelTypeIsRejected() throws IOException {
        Path file = modifiedBardS(root -> ((ObjectNode) root.path("model")).put("type", "WordPiece"));
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertEquals("tokenizer.json at " + file + ": model.type \"WordPiece\" is not supported (byte-level BPE only).",
                e.getMessage());
    }

    @Test
    void byteFallbackBpeIsRejectedAsNotByteLevel() throws IOException {
        Path file = modifiedBardS(root -> ((ObjectNode) root.path("model")).put("byte_fallback", true));
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertOneSentenceNaming(file, e);
        assertTrue(e.getMessage().contains("model.byte_fallback"), e.getMessage());
    }

    @Test
    void sentencePieceStyleVocabIsRejectedAsNotByteLevel() throws IOException {
        Path file = modifiedBardS(root -> ((ObjectNode) root.path("model").path("vocab")).put("▁the", 5000));
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertOneSentenceNaming(file, e);
        assertTrue(e.getMessage().contains("\"▁the\" contains U+2581"), e.getMessage());
    }

    @Test
    void splitThenByteLevelPreTokenizerIsRejectedAsNotYetSupported() throws IOException {
        Path file = modifiedBardS(root -> {
            ObjectNode seq = root.putObject("pre_tokenizer").put("type", "Sequence");
            ArrayNode steps = seq.putArray("pretokenizers");
            ObjectNode split = steps.addObject().put("type", "Split").put("behavior", "Isolated").put("invert", false);
            split.putObject("pattern").put("Regex", "\\p{N}{1,3}");
            steps.addObject().put("type", "ByteLevel").put("add_prefix_space", false).put("use_regex", false);
        });
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertOneSentenceNaming(file, e);
        assertTrue(e.getMessage().contains("is not supported yet"), e.getMessage());
    }

    @Test
    void mergeOfUnknownTokenIsRejected() throws IOException {
        Path file = modifiedBardS(root -> ((ArrayNode) root.path("model").path("merges")).add("zzq qqz"));
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertOneSentenceNaming(file, e);
        assertTrue(e.getMessage().contains("model.merges[1791]"), e.getMessage());
    }

    private static void assertOneSentenceNaming(Path file, TandemException e) {
        String message = e.getMessage();
        assertTrue(message.contains(file.toString()), message);
        assertTrue(message.endsWith("."), message);
        assertTrue(message.lines().count() == 1, message);
    }

    private Path modifiedBardS(Consumer<ObjectNode> change) throws IOException {
        return BardTokenizerFiles.modifiedBardS(tmp, change);
    }
}
