package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.BertFixtures;
import dev.tandem.transformer.bert.Encoders;
import dev.tandem.transformer.config.BertConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code tandem embed}: JSON lines in, one vector per line out, equal to the Java API's; and its refusals. */
class EmbedCliTest {
    static final BertConfig CONFIG = new BertConfig(2048, 32, 2, 4, 48, 40, 2, 1e-12);

    record Run(int exit, String out, String err) {}

    static Run embed(String stdin, String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        String[] all = new String[args.length + 1];
        all[0] = "embed";
        System.arraycopy(args, 0, all, 1, args.length);
        int exit = Main.run(all, new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)), new PrintWriter(out, true),
                new PrintWriter(err, true));
        return new Run(exit, out.toString(), err.toString());
    }

    private static String lastLine(String s) {
        return s.strip().lines().reduce((a, b) -> b).orElse("");
    }

    @Test
    void eachLineGetsTheVectorTheApiGives(@TempDir Path tmp) throws Exception {
        Path dir = BertFixtures.writeDirectory(tmp.resolve("bert"), CONFIG, 3);
        String[] texts = {"ROMEO:", "Now is the winter of our discontent", "\"quoted\" and \\ backslash"};
        StringBuilder in = new StringBuilder();
        for (String t : texts) {
            in.append(new ObjectMapper().writeValueAsString(t)).append("\n\n");
        }
        Run r = embed(in.toString(), "--model", dir.toString(), "--batch", "2", "--threads", "1");
        assertEquals(0, r.exit(), r.err());
        List<String> lines = r.out().strip().lines().toList();
        assertEquals(texts.length, lines.size());
        try (BertEncoder enc = Encoders.openDirectory(dir, null, 1)) {
            float[][] expected = enc.embed(List.of(texts), BertEncoder.Pooling.MEAN, true, false);
            for (int i = 0; i < texts.length; i++) {
                JsonNode v = new ObjectMapper().readTree(lines.get(i));
                assertEquals(CONFIG.hiddenSize(), v.size());
                for (int j = 0; j < v.size(); j++) {
                    assertEquals(expected[i][j], v.get(j).floatValue(), "line " + i + " element " + j);
                }
            }
        }
        Run cls = embed("\"ROMEO:\"\n", "--model", dir.toString(), "--pooling", "cls", "--raw");
        assertEquals(0, cls.exit(), cls.err());
        assertTrue(!cls.out().equals(lines.getFirst()), "cls pooling differs from mean");
    }

    @Test
    void theDefaultIsTheEmbeddedMiniLm() throws Exception {
        Run r = embed("\"Hello, my dog is cute\"\n");
        assertEquals(0, r.exit(), r.err());
        JsonNode v = new ObjectMapper().readTree(r.out().strip());
        try (BertEncoder enc = Encoders.miniLm(null, 1)) {
            float[] expected = enc.embed(List.of("Hello, my dog is cute"), BertEncoder.Pooling.MEAN, true, false)[0];
            assertEquals(384, v.size());
            for (int j = 0; j < v.size(); j++) {
                assertEquals(expected[j], v.get(j).floatValue(), "element " + j);
            }
        }
    }

    @Test
    void badInputIsOneSentence(@TempDir Path tmp) throws Exception {
        Path dir = BertFixtures.writeDirectory(tmp.resolve("bert"), CONFIG, 4);
        Run notString = embed("\"fine\"\n[1, 2]\n", "--model", dir.toString());
        assertEquals(1, notString.exit());
        assertEquals("tandem: stdin line 2 should be a JSON string to embed, got array.", lastLine(notString.err()));
        assertEquals(1, notString.out().strip().lines().count(), "the line before the bad one was answered");
        Run tooLong = embed(new ObjectMapper().writeValueAsString("word ".repeat(100)) + "\n", "--model", dir.toString());
        assertEquals(1, tooLong.exit());
        assertTrue(lastLine(tooLong.err()).startsWith("tandem: stdin line 1: the input has ") && tooLong.err().contains("--truncate"),
                tooLong.err());
        assertEquals(0, embed(new ObjectMapper().writeValueAsString("word ".repeat(100)) + "\n", "--model", dir.toString(),
                "--truncate").exit());
        Run decoder = embed("\"x\"\n", "--model", TestModels.model("bard-l").toString());
        assertEquals(1, decoder.exit());
        assertTrue(lastLine(decoder.err()).contains("model_type") && lastLine(decoder.err()).contains("llama"), decoder.err());
        Run pooling = embed("\"x\"\n", "--model", dir.toString(), "--pooling", "max");
        assertEquals(2, pooling.exit());
        assertEquals("tandem: --pooling must be mean or cls, but was \"max\".", lastLine(pooling.err()));
        MethodCliTest.Run encoderToGenerate = MethodCliTest.run("generate", "--model", dir.toString(), "--prompt", "x");
        assertEquals(1, encoderToGenerate.exit());
        assertTrue(lastLine(encoderToGenerate.err()).contains("is an encoder, which embeds text rather than generating it"),
                encoderToGenerate.err());
    }
}
