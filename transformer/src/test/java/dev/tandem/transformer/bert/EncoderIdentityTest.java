package dev.tandem.transformer.bert;

import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.config.BertConfig;
import dev.tandem.transformer.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link BertEncoder#identity}: equal exactly when the files that fix the vectors are equal, whatever the folder's name. */
class EncoderIdentityTest {
    static final BertConfig CONFIG = new BertConfig(2048, 32, 2, 4, 48, 40, 2, 1e-12);

    private static EncoderIdentity identity(Path dir) {
        try (BertEncoder e = Encoders.openDirectory(dir, null, 1)) {
            return e.identity();
        }
    }

    @Test
    void theIdentityFollowsTheFilesNotTheFolder(@TempDir Path tmp) throws IOException {
        Path a = BertFixtures.writeDirectory(tmp.resolve("a"), CONFIG, 1);
        EncoderIdentity ida = identity(a);
        assertEquals("a", ida.name());
        assertTrue(ida.sha256().matches("[0-9a-f]{64}"), ida.sha256());
        assertEquals("a (sha256 " + ida.sha256().substring(0, 8) + "…)", ida.describe());

        EncoderIdentity copy = identity(BertFixtures.writeDirectory(tmp.resolve("copy"), CONFIG, 1));
        assertEquals("copy", copy.name());
        assertTrue(ida.sameEncoder(copy), "the same weights in another folder");

        assertFalse(ida.sameEncoder(identity(BertFixtures.writeDirectory(tmp.resolve("seed2"), CONFIG, 2))), "other weights");

        Path eps = BertFixtures.writeDirectory(tmp.resolve("eps"), CONFIG, 1);
        Files.writeString(eps.resolve("config.json"), Files.readString(eps.resolve("config.json")).replace("1.0E-12", "1.0E-6"));
        assertNotEquals(Files.readString(a.resolve("config.json")), Files.readString(eps.resolve("config.json")));
        assertFalse(ida.sameEncoder(identity(eps)), "another config.json");

        Path tok = BertFixtures.writeDirectory(tmp.resolve("tok"), CONFIG, 1);
        Files.writeString(tok.resolve("tokenizer.json"), Files.readString(tok.resolve("tokenizer.json")) + "\n");
        assertFalse(ida.sameEncoder(identity(tok)), "another tokenizer.json");

        // A gzip-compressed tokenizer.json is hashed as the text it holds.
        Path gz = BertFixtures.writeDirectory(tmp.resolve("gz"), CONFIG, 1);
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(gz.resolve("tokenizer.json.gz")))) {
            Files.copy(gz.resolve("tokenizer.json"), out);
        }
        Files.delete(gz.resolve("tokenizer.json"));
        assertTrue(ida.sameEncoder(identity(gz)), "tokenizer.json.gz");
    }

    @Test
    void anEncoderOfWeightsInMemoryHasNoIdentity() {
        Map<String, float[]> w = BertFixtures.randomWeights(CONFIG, 1);
        try (BertEncoder e = new BertEncoder(CONFIG, Tokenizers.load(TestModels.model("bard-s").resolve("tokenizer.json")),
                name -> w.containsKey(name) ? Tensor.ofFloats(w.get(name), BertFixtures.shapeOf(CONFIG, name)) : null,
                new CpuBackend(1), true, "the test's weights", 1024, null)) {
            assertThrows(IllegalStateException.class, e::identity);
        }
    }

    @Test
    void aDigestIsSixtyFourLowercaseHexDigits() {
        assertThrows(IllegalArgumentException.class, () -> new EncoderIdentity("x", "ABC"));
        assertThrows(IllegalArgumentException.class, () -> new EncoderIdentity("x", "A".repeat(64)));
        assertEquals(new EncoderIdentity("x", "0".repeat(64)), EncoderIdentity.of("x", new byte[32]));
    }
}
