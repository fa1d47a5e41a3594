package dev.tandem.app;

import dev.tandem.decoding.rag.PassageIndex;
import dev.tandem.runtime.Progress;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.BertFixtures;
import dev.tandem.transformer.bert.Encoders;
import dev.tandem.transformer.config.BertConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code tandem index}: the index the Java API builds, one summary line; and its refusals, each leaving no file. */
class IndexCliTest {
    static final BertConfig CONFIG = new BertConfig(2048, 32, 2, 4, 48, 40, 2, 1e-12);
    static final String CORPUS = """
            It was in July, 1805, and the speaker was the well-known Anna Pavlovna
            Scherer, maid of honor and favorite of the Empress Marya Fedorovna. With
            these words she greeted Prince Vasili Kuragin, a man of high rank and
            importance, who was the first to arrive at her reception.

            "Heavens! what a virulent attack!" replied the prince, not in the least
            disconcerted by this reception.


            "First of all, dear friend, tell me how you are. Set your friend's
            mind at rest," said he without altering his tone.
            """;
    static final Pattern SUMMARY = Pattern.compile(
            "indexed (\\d+) chunks \\(at most (\\d+) tokens of bard-s each\\) of (\\d+) documents with the encoder (\\S+) "
                    + "\\((\\d+) dimensions\\) into (.+) in \\d+\\.\\d s");

    record Run(int exit, String out, String err) {}

    static Run index(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        String[] all = new String[args.length + 1];
        all[0] = "index";
        System.arraycopy(args, 0, all, 1, args.length);
        int exit = Main.run(all, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, out.toString(), err.toString());
    }

    private static String lastLine(String s) {
        return s.strip().lines().reduce((a, b) -> b).orElse("");
    }

    @Test
    void writesTheIndexTheApiBuildsAndSaysSoInOneLine(@TempDir Path tmp) throws Exception {
        Path corpus = Files.writeString(tmp.resolve("corpus.txt"), CORPUS);
        Path enc = BertFixtures.writeDirectory(tmp.resolve("tiny-bert"), CONFIG, 5);
        Path out = tmp.resolve("corpus.idx");
        Path bardS = TestModels.model("bard-s");
        Run r = index("--corpus", corpus.toString(), "--chunk", "8", "--out", out.toString(), "--model", bardS.toString(),
                "--encoder", enc.toString(), "--threads", "1");
        assertEquals(0, r.exit(), r.err());
        assertEquals(1, r.out().lines().count(), r.out());
        Matcher m = SUMMARY.matcher(r.out().strip());
        assertTrue(m.matches(), r.out());
        PassageIndex read = PassageIndex.read(out);
        assertEquals(read.size(), Integer.parseInt(m.group(1)));
        assertEquals("8", m.group(2));
        assertEquals(3, Integer.parseInt(m.group(3)));
        assertEquals("tiny-bert", m.group(4));
        assertEquals(CONFIG.hiddenSize(), Integer.parseInt(m.group(5)));
        assertEquals(out.toString(), m.group(6));
        try (BertEncoder encoder = Encoders.openDirectory(enc, null, 1)) {
            PassageIndex api = PassageIndex.build(corpus, bardS, encoder, 8, false, Progress.NONE);
            assertEquals(api.size(), read.size());
            for (int i = 0; i < api.size(); i++) {
                assertEquals(api.chunk(i), read.chunk(i));
                assertArrayEquals(api.vector(i), read.vector(i));
            }
            read.requireEncoder(encoder);
            read.requireDecoder(bardS);
        }
    }

    @Test
    void theDefaultEncoderIsTheEmbeddedMiniLm(@TempDir Path tmp) throws Exception {
        Path corpus = Files.writeString(tmp.resolve("corpus.txt"), CORPUS);
        Path out = tmp.resolve("minilm.idx");
        Run r = index("--corpus", corpus.toString(), "--chunk", "32", "--out", out.toString(), "--model",
                TestModels.model("bard-s").toString());
        assertEquals(0, r.exit(), r.err());
        Matcher m = SUMMARY.matcher(r.out().strip());
        assertTrue(m.matches(), r.out());
        assertEquals(Encoders.MINILM, m.group(4));
        assertEquals("384", m.group(5));
        try (BertEncoder miniLm = Encoders.miniLm(null, 1)) {
            PassageIndex.read(out).requireEncoder(miniLm);
        }
    }

    @Test
    void badInputIsOneSentenceAndLeavesNoFile(@TempDir Path tmp) throws Exception {
        Path corpus = Files.writeString(tmp.resolve("corpus.txt"), CORPUS);
        Path enc = BertFixtures.writeDirectory(tmp.resolve("bert"), CONFIG, 6);
        Path out = tmp.resolve("out.idx");
        String bardS = TestModels.model("bard-s").toString();
        for (String n : new String[] {"0", "257", "-3"}) {
            Run r = index("--corpus", corpus.toString(), "--chunk", n, "--out", out.toString(), "--model", bardS, "--encoder", enc.toString());
            assertEquals(2, r.exit(), r.err());
            assertEquals("tandem: --chunk must be from 1 to 256 decoder tokens, but was " + n + ".", lastLine(r.err()));
        }
        Run noOut = index("--corpus", corpus.toString(), "--chunk", "8", "--model", bardS);
        assertEquals(2, noOut.exit());
        assertTrue(lastLine(noOut.err()).startsWith("tandem: Missing required option: '--out=INDEX'"), noOut.err());
        Run ontoCorpus = index("--corpus", corpus.toString(), "--chunk", "8", "--out", corpus.toString(), "--model", bardS);
        assertEquals(2, ontoCorpus.exit());
        assertEquals("tandem: --out names the corpus file itself; give another file for the index.", lastLine(ontoCorpus.err()));
        assertEquals(CORPUS, Files.readString(corpus));

        Path missing = tmp.resolve("no-such-corpus.txt");
        Run noCorpus = index("--corpus", missing.toString(), "--chunk", "8", "--out", out.toString(), "--model", bardS);
        assertEquals(1, noCorpus.exit());
        assertEquals("tandem: the corpus file " + missing + " does not exist.", lastLine(noCorpus.err()));
        Run tooLong = index("--corpus", corpus.toString(), "--chunk", "64", "--out", out.toString(), "--model", bardS, "--encoder",
                enc.toString());
        assertEquals(1, tooLong.exit());
        assertTrue(lastLine(tooLong.err()).startsWith("tandem: chunk 0 (token 0 of document 0, which starts at " + corpus
                + " line 1) encodes to ")
                && lastLine(tooLong.err()).endsWith("give a smaller chunk size, or truncate such chunks."), tooLong.err());
        Run encoderAsDecoder = index("--corpus", corpus.toString(), "--chunk", "8", "--out", out.toString(), "--model", enc.toString());
        assertEquals(1, encoderAsDecoder.exit());
        assertTrue(lastLine(encoderAsDecoder.err()).contains("is an encoder"), encoderAsDecoder.err());
        Path noFolder = tmp.resolve("no-folder").resolve("out.idx");
        Run noDir = index("--corpus", corpus.toString(), "--chunk", "8", "--out", noFolder.toString(), "--model", bardS, "--encoder",
                enc.toString());
        assertEquals(1, noDir.exit());
        assertEquals("tandem: the folder of the passage index " + noFolder + " does not exist.", lastLine(noDir.err()));
        for (Run r : new Run[] {noCorpus, tooLong, encoderAsDecoder, noDir}) {
            assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
            assertEquals("", r.out());
        }
        try (Stream<Path> left = Files.list(tmp)) {
            assertEquals(java.util.Set.of(corpus, enc), java.util.Set.copyOf(left.toList()), "nothing written");
        }

        Run truncated = index("--corpus", corpus.toString(), "--chunk", "64", "--out", out.toString(), "--model", bardS, "--encoder",
                enc.toString(), "--truncate");
        assertEquals(0, truncated.exit(), truncated.err());
        assertEquals(64, PassageIndex.read(out).chunkTokens());
    }
}
