package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.runtime.TandemException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Unusable tokenizer files fail with one sentence that names the file and what is wrong. */
class TokenizerLoadErrorsTest {

    @TempDir
    Path tmp;

    @Test
    void missingFileIsReportedWithItsPath() {
        Path missing = tmp.resolve("nope").resolve("tokenizer.json");
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(missing));
        assertEquals("tokenizer file not found: " + missing + ".", e.getMessage());
    }

    @Test
    void aDirectoryIsNamedAsOneNotAsMissing() {
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(tmp));
        assertEquals("the tokenizer file " + tmp + " is a directory; give its tokenizer.json (or, on the command line,"
                + " the model directory with --model).", e.getMessage());
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
    void malformedJsonIsWordedByUsNotByTheParser() throws IOException {
        // Found by TokenizerFuzzTest: Jackson's message, with its own token names, ended up in the sentence.
        Path file = tmp.resolve("tokenizer.json");
        Files.writeString(file, "{\"version\": \"1.0\", \"model\": VALUE_STRING}");
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertEquals("tokenizer.json at " + file + " is not valid JSON at line 1, column 29.", e.getMessage());
        Files.writeString(file, "{\"version\": \"1.0\", \"model\": {\"type\": ");
        e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertTrue(e.getMessage().endsWith(" (it ends in the middle of a value, so it is cut short)."), e.getMessage());
    }

    @Test
    void invalidUtf8IsNamedWhereItIsEvenWhereTheParserWouldNotLook() throws IOException {
        // A field the loader skips was never decoded, so its bad bytes passed without a word.
        Path file = tmp.resolve("tokenizer.json");
        Files.write(file, new byte[] {'{', '\n', '"', 'x', '"', ':', '"', (byte) 0xFF, (byte) 0xFE, '"', '}'});
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertEquals("tokenizer.json at " + file + " is not valid UTF-8 at line 2, byte 6 of the line (byte 7 of the file);"
                + " it must be UTF-8 text.", e.getMessage());
        // UTF-32, which the parser would have tried to decode, and then blamed on gzip.
        Files.write(file, new byte[] {0, 0, 0, '{', 0, 0, 0, '"', (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF});
        e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertTrue(e.getMessage().contains(" is not valid UTF-8 at line 1, byte 9 "), e.getMessage());
    }

    @Test
    void aLineBreakQuotedFromTheFileStaysOnOneLine() throws IOException {
        // Found by TokenizerFuzzTest: a merge naming a token with a line break in it broke the sentence in two.
        Path file = modifiedBardS(root -> ((ArrayNode) root.path("model").path("merges")).add("zz\nq qqz"));
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertTrue(e.getMessage().endsWith("model.merges[1791] uses \"zz\\nq\", which is not in model.vocab."), e.getMessage());
        assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    }

    @Test
    void aPatternThatBacktracksWithoutEndIsAbandonedInOneSentence() throws IOException {
        // ((a+)+)+b on a run of a's without a b tries every way of cutting the run: exponential in its length,
        // a hang for years at 60 (Java's regex engine cuts short the simpler (a+)+b, but not this one). The
        // patterns real tokenizers use read each character 1 to 4 times (Llama 3's, on runs of 100,000 spaces,
        // letters, digits, punctuation or tabs).
        Path file = modifiedBardS(root -> root.set("normalizer", root.objectNode().put("type", "Replace")
                .put("content", "x").set("pattern", root.objectNode().put("Regex", "((a+)+)+b"))));
        Tokenizer t = Tokenizers.load(file);
        assertEquals("a cx", t.decode(t.encode("a cab")), "the pattern still works where it does not backtrack");
        TandemException e = assertThrows(TandemException.class, () -> t.encode("a".repeat(60)));
        assertTrue(e.getMessage().contains(": normalizer.pattern.Regex \"((a+)+)+b\" backtracks without end on a text of 60 characters"),
                e.getMessage());
    }

    @Test
    void unigramModelIsRejectedAsNotSupportedYet() throws IOException {
        Path file = modifiedBardS(root -> ((ObjectNode) root.path("model")).put("type", "Unigram"));
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertEquals("tokenizer.json at " + file + ": model.type Unigram is not supported yet (only BPE and WordPiece).",
                e.getMessage());
    }

    @Test
    void wordPieceModelWithoutAVocabularyIsRejected() throws IOException {
        Path file = modifiedMiniLm(root -> ((ObjectNode) root.path("model")).remove("vocab"));
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertEquals("tokenizer.json at " + file + ": model.vocab is missing or not an object.", e.getMessage());
    }

    @Test
    void wordPieceModelWhoseUnknownTokenIsNotInTheVocabularyIsRejected() throws IOException {
        Path file = modifiedMiniLm(root -> ((ObjectNode) root.path("model")).put("unk_token", "<unk>"));
        assertRejected(file, "model.unk_token \"<unk>\" is not in model.vocab");
    }

    @Test
    void unknownNormalizerInABertFileIsRejectedNamingIt() throws IOException {
        Path file = modifiedMiniLm(root -> ((ObjectNode) root.path("normalizer")).put("type", "BertNormaliser"));
        assertRejected(file, "normalizer.type BertNormaliser is not supported (supported: ");
    }

    @Test
    void wordPieceDecoderAfterFuseIsRejected() throws IOException {
        Path file = modifiedMiniLm(root -> {
            ArrayNode steps = root.putObject("decoder").put("type", "Sequence").putArray("decoders");
            steps.addObject().put("type", "Fuse");
            steps.addObject().put("type", "WordPiece");
        });
        assertRejected(file, "decoder WordPiece after ByteLevel or Fuse");
    }

    @Test
    void pairTemplateWithoutSequenceBIsRejected() throws IOException {
        Path file = modifiedMiniLm(root -> ((ArrayNode) root.path("post_processor").path("pair")).remove(3));
        assertRejected(file, "post_processor.pair does not use both sequences A and B");
    }

    @Test
    void mergeOfUnknownTokenIsRejected() throws IOException {
        Path file = modifiedBardS(root -> ((ArrayNode) root.path("model").path("merges")).add("zzq qqz"));
        assertRejected(file, "model.merges[1791] uses \"zzq\", which is not in model.vocab");
    }

    @Test
    void mergeWhoseResultIsNotInTheVocabIsRejected() throws IOException {
        // bard-s merges "a b" into "ab"; without "ab" in the vocabulary that merge names a missing token.
        Path file = modifiedBardS(root -> ((ObjectNode) root.path("model").path("vocab")).remove("ab"));
        assertRejected(file, "model.merges[", "produces \"ab\", which is not in model.vocab");
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({
        "normalizer, Precompiled",
        "pre_tokenizer, UnicodeScripts",
        "decoder, CTC",
        "post_processor, NoSuchProcessor",
    })
    void unsupportedComponentTypeIsRejectedNamingTheField(String field, String type) throws IOException {
        Path file = modifiedBardS(root -> root.putObject(field).put("type", type));
        assertRejected(file, field + ".type " + type + " is not supported (supported: ");
    }

    @Test
    void unsupportedTypeInsideASequenceIsNamedByItsPath() throws IOException {
        Path file = modifiedBardS(root -> {
            ArrayNode steps = root.putObject("normalizer").put("type", "Sequence").putArray("normalizers");
            steps.addObject().put("type", "NFC");
            steps.addObject().put("type", "Precompiled");
        });
        assertRejected(file, "normalizer.normalizers[1].type Precompiled is not supported");
    }

    @Test
    void regexThatJavaCannotCompileIsRejectedNamingThePattern() throws IOException {
        // \K (keep) is Oniguruma syntax with no Java equivalent.
        Path file = modifiedBardS(root -> {
            ObjectNode split = root.putObject("pre_tokenizer").put("type", "Split").put("behavior", "Isolated");
            split.putObject("pattern").put("Regex", "a\\Kb");
        });
        assertRejected(file, "pre_tokenizer.pattern.Regex \"a\\Kb\" does not compile as a Java regex");
    }

    @Test
    void templateSpecialTokenMissingFromSpecialTokensIsRejected() throws IOException {
        Path file = modifiedBardS(root -> {
            ObjectNode template = root.putObject("post_processor").put("type", "TemplateProcessing");
            ArrayNode single = template.putArray("single");
            single.addObject().putObject("SpecialToken").put("id", "<s>").put("type_id", 0);
            single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
            template.putObject("special_tokens");
        });
        assertRejected(file, "post_processor.special_tokens has no entry \"<s>\"", "post_processor.single[0]");
    }

    @Test
    void subwordPrefixIsRejectedAsNotImplemented() throws IOException {
        Path file = modifiedBardS(root -> ((ObjectNode) root.path("model")).put("continuing_subword_prefix", "##"));
        assertRejected(file, "model.continuing_subword_prefix \"##\" is not supported");
    }

    @Test
    void bpeDropoutIsRejected() throws IOException {
        Path file = modifiedBardS(root -> ((ObjectNode) root.path("model")).put("dropout", 0.1));
        assertRejected(file, "model.dropout 0.1 is not supported");
    }

    @Test
    void byteFallbackDecoderAfterFuseIsRejected() throws IOException {
        Path file = modifiedBardS(root -> {
            ArrayNode steps = root.putObject("decoder").put("type", "Sequence").putArray("decoders");
            steps.addObject().put("type", "Fuse");
            steps.addObject().put("type", "ByteFallback");
        });
        assertRejected(file, "decoder ByteFallback after ByteLevel or Fuse");
    }

    @Test
    void unknownSplitBehaviourIsRejected() throws IOException {
        Path file = modifiedBardS(root -> {
            ObjectNode split = root.putObject("pre_tokenizer").put("type", "Split").put("behavior", "Sideways");
            split.putObject("pattern").put("String", " ");
        });
        assertRejected(file, "pre_tokenizer.behavior Sideways is not one of");
    }

    /** Loading fails with one sentence that names the file and contains every fragment. */
    private static void assertRejected(Path file, String... fragments) {
        TandemException e = assertThrows(TandemException.class, () -> Tokenizers.load(file));
        assertOneSentenceNaming(file, e);
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), e.getMessage());
        }
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

    /** all-MiniLM-L6-v2's tokenizer.json (WordPiece), changed by {@code change}, in a new file. */
    private Path modifiedMiniLm(Consumer<ObjectNode> change) throws IOException {
        ObjectNode root;
        try (InputStream in = new GZIPInputStream(Files.newInputStream(ReferenceTokenizers.file("minilm")))) {
            root = (ObjectNode) BardTokenizerFiles.JSON.readTree(in);
        }
        change.accept(root);
        Path file = Files.createTempFile(tmp, "tokenizer", ".json");
        BardTokenizerFiles.JSON.writeValue(file.toFile(), root);
        return file;
    }
}
