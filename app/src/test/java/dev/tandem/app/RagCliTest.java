package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.rag.ChunkEmbeddingCache;
import dev.tandem.decoding.rag.ChunkProjection;
import dev.tandem.decoding.rag.ExpansionPolicy;
import dev.tandem.decoding.rag.PassageCache;
import dev.tandem.decoding.rag.PassageIndex;
import dev.tandem.decoding.rag.RagDecoding;
import dev.tandem.decoding.rag.RefragDecoding;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.BertFixtures;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.bert.Encoders;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.tandem.app.MethodCliTest.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code generate --method rag --passages INDEX}: the CLI retrieves what the index's API retrieves and decodes what
 * {@link RagDecoding} decodes; an index of another encoder, passages over the context and missing flags each get one
 * sentence. Small random encoders keep it quick (retrieval quality is not the point here).
 */
class RagCliTest {
    static final String BARD_S = TestModels.model("bard-s").toString();
    static final String QUESTION = "\"Heavens! what a virulent attack!\" replied the prince";

    @TempDir
    static Path tmp;
    static Path encoder;
    static Path otherEncoder;
    static Path index;

    @BeforeAll
    static void build() throws Exception {
        encoder = BertFixtures.writeDirectory(tmp.resolve("tiny-bert"), IndexCliTest.CONFIG, 5);
        otherEncoder = BertFixtures.writeDirectory(tmp.resolve("other-bert"), IndexCliTest.CONFIG, 6);
        Path corpus = Files.writeString(tmp.resolve("corpus.txt"), IndexCliTest.CORPUS);
        index = tmp.resolve("corpus.idx");
        MethodCliTest.Run r = run("index", "--corpus", corpus.toString(), "--chunk", "12", "--out", index.toString(), "--model", BARD_S,
                "--encoder", encoder.toString(), "--threads", "1");
        assertEquals(0, r.exit(), r.err());
    }

    @Test
    void theCliDecodesOverWhatTheIndexRetrieves() throws Exception {
        MethodCliTest.Run r = run("generate", "--model", BARD_S, "--method", "rag", "--passages", index.toString(), "--encoder",
                encoder.toString(), "--passages-k", "3", "--max-tokens", "10", "--temperature", "0", "--format", "json",
                "--prompt", QUESTION);
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(r.out());
        PassageIndex idx = PassageIndex.read(index);
        try (LanguageModel model = ModelLoader.load(Path.of(BARD_S));
             BertEncoder enc = Encoders.openDirectory(encoder, null, 1)) {
            List<int[]> passages = idx.retrieve(enc, QUESTION, 3).stream().map(h -> h.chunk().ids()).toList();
            assertEquals(3, passages.size());
            GenerationResult expected = new RagDecoding(model, PassageCache.forModel(model), q -> passages)
                    .generate(new GenerationRequest(QUESTION, null, 10, SamplingParams.greedy(), List.of(), null, 0, 0));
            int[] got = new ObjectMapper().convertValue(json.get("generated_ids"), int[].class);
            assertArrayEquals(expected.generatedIds(), got);
            assertEquals(expected.usage().promptTokens(), json.get("usage").get("prompt_tokens").asInt(),
                    "the prompt counts the passages");
        }
    }

    @Test
    void anIndexOfAnotherEncoderIsRefused() {
        MethodCliTest.Run other = run("generate", "--model", BARD_S, "--method", "rag", "--passages", index.toString(), "--encoder",
                otherEncoder.toString(), "--prompt", QUESTION);
        assertEquals(1, other.exit(), other.err());
        String last = other.err().strip().lines().reduce((a, b) -> b).orElse("");
        assertTrue(last.contains("was built with the encoder tiny-bert") && last.contains("not other-bert"), last);
        MethodCliTest.Run embedded = run("generate", "--model", BARD_S, "--method", "rag", "--passages", index.toString(),
                "--prompt", QUESTION);
        assertEquals(2, embedded.exit(), embedded.err());
        assertTrue(embedded.err().contains("was built with the encoder tiny-bert; give its directory with --encoder DIR."),
                embedded.err());
    }

    @Test
    void passagesOverTheContextAndMissingFlagsGetOneSentence() throws Exception {
        // One document of about 1800 tokens in chunks of 256: five of them do not fit bard-s's 1024 positions.
        Path corpus = Files.writeString(tmp.resolve("long.txt"), IndexCliTest.CORPUS.replaceAll("\n+", "\n").repeat(12));
        Path big = tmp.resolve("long.idx");
        MethodCliTest.Run built = run("index", "--corpus", corpus.toString(), "--chunk", "256", "--out", big.toString(), "--model",
                BARD_S, "--encoder", encoder.toString(), "--threads", "1", "--truncate");
        assertEquals(0, built.exit(), built.err());
        MethodCliTest.Run r = run("generate", "--model", BARD_S, "--method", "rag", "--passages", big.toString(), "--encoder",
                encoder.toString(), "--passages-k", "5", "--prompt", QUESTION);
        assertEquals(1, r.exit(), r.err());
        assertTrue(r.err().strip().endsWith("retrieve fewer passages (--passages-k) or shorter ones."), r.err());
        assertTrue(r.err().contains("5 passages with the prefix and the question hold"), r.err());

        MethodCliTest.assertUsage("--method rag needs --passages INDEX (written by tandem index).", BARD_S, "--method", "rag");
        MethodCliTest.assertUsage("--passages-k must be at least 1, but was 0.", BARD_S, "--method", "rag", "--passages",
                index.toString(), "--passages-k", "0");
        MethodCliTest.assertUsage("--passages-k applies to --method rag, refrag, rapid only, not to --method plain.", BARD_S, "--passages-k", "2");
        MethodCliTest.Run missing = run("generate", "--model", BARD_S, "--method", "rag", "--passages", tmp.resolve("nope.idx").toString(),
                "--encoder", encoder.toString(), "--prompt", QUESTION);
        assertEquals(1, missing.exit(), missing.err());
        assertTrue(missing.err().contains("nope.idx"), missing.err());
    }

    @Test
    void greedyRapidIsGreedyDecodingOfTheWholeContextAndItsFlagsAreChecked() throws Exception {
        Path context = Files.writeString(tmp.resolve("context.txt"), IndexCliTest.CORPUS);
        String[] common = {"generate", "--model", BARD_S, "--context", "@" + context, "--max-tokens", "12", "--temperature", "0",
                "--format", "json", "--prompt", QUESTION};
        MethodCliTest.Run rapid = run(concat(common, "--method", "rapid", "--passages-k", "2", "--chunk-tokens", "16",
                "--encoder", encoder.toString(), "--eta", "10", "--draft-length", "3"));
        assertEquals(0, rapid.exit(), rapid.err());
        // cad with α = 0 is plain decoding of the context followed by the prompt: what the target reads.
        MethodCliTest.Run plain = run(concat(common, "--method", "cad", "--alpha", "0"));
        assertEquals(0, plain.exit(), plain.err());
        ObjectMapper m = new ObjectMapper();
        assertEquals(m.readTree(plain.out()).get("generated_ids"), m.readTree(rapid.out()).get("generated_ids"));
        assertEquals(m.readTree(plain.out()).get("usage").get("prompt_tokens"), m.readTree(rapid.out()).get("usage").get("prompt_tokens"));

        MethodCliTest.assertUsage("--method rapid needs --context TEXT or --context @FILE (the long context the target reads).", BARD_S,
                "--method", "rapid");
        MethodCliTest.assertUsage("--eta must be a finite number of at least 0, but was -1.0.", BARD_S, "--method", "rapid",
                "--context", "x", "--eta", "-1");
        MethodCliTest.assertUsage("--method rapid takes --draft-length N, a number.", BARD_S, "--method", "rapid", "--context", "x",
                "--draft-length", "auto");
        MethodCliTest.assertUsage("--chunk-tokens must be at most 256 for --method rapid, but was 300.", BARD_S, "--method", "rapid",
                "--context", "x", "--chunk-tokens", "300");
        MethodCliTest.assertUsage("--eta applies to --method rapid only, not to --method rag.", BARD_S, "--method", "rag",
                "--passages", index.toString(), "--eta", "1");
    }

    @Test
    void refragReadsTheProjectionFileAndDecodesWhatTheApiDecodes() throws Exception {
        // A random projection from the tiny encoder's 32 dimensions to bard-s's 64: the mechanism, not a trained one.
        java.util.SplittableRandom random = new java.util.SplittableRandom(11);
        float[][] weight = new float[64][IndexCliTest.CONFIG.hiddenSize()];
        for (float[] row : weight) {
            for (int j = 0; j < row.length; j++) {
                row[j] = (float) (random.nextDouble() - 0.5) * 0.1f;
            }
        }
        Path projection = tmp.resolve("projection.safetensors");
        ChunkProjection.of(weight, null).write(projection);
        MethodCliTest.Run r = run("generate", "--model", BARD_S, "--method", "refrag", "--passages", index.toString(), "--encoder",
                encoder.toString(), "--projection", projection.toString(), "--passages-k", "3", "--chunk-tokens", "4", "--expand", "0.5",
                "--max-tokens", "8", "--temperature", "0", "--format", "json", "--prompt", QUESTION);
        assertEquals(0, r.exit(), r.err());
        PassageIndex idx = PassageIndex.read(index);
        try (LanguageModel model = ModelLoader.load(Path.of(BARD_S));
             BertEncoder enc = Encoders.openDirectory(encoder, null, 1)) {
            List<int[]> passages = idx.retrieve(enc, QUESTION, 3).stream().map(h -> h.chunk().ids()).toList();
            GenerationResult expected = new RefragDecoding(model, Embedder.batching(enc), ChunkProjection.read(projection,
                    enc.dimension(), 64), new ChunkEmbeddingCache(100), q -> passages).withChunkTokens(4)
                    .withPolicy(ExpansionPolicy.similarity(0.5))
                    .generate(new GenerationRequest(QUESTION, null, 8, SamplingParams.greedy(), List.of(), null, 0, 0));
            assertArrayEquals(expected.generatedIds(), new ObjectMapper().convertValue(new ObjectMapper().readTree(r.out())
                    .get("generated_ids"), int[].class));
        }
        // A projection for another decoder, and a missing one.
        ChunkProjection.of(new float[32][IndexCliTest.CONFIG.hiddenSize()], null).write(tmp.resolve("narrow.safetensors"));
        MethodCliTest.Run narrow = run("generate", "--model", BARD_S, "--method", "refrag", "--passages", index.toString(), "--encoder",
                encoder.toString(), "--projection", tmp.resolve("narrow.safetensors").toString(), "--prompt", QUESTION);
        assertEquals(1, narrow.exit(), narrow.err());
        assertTrue(narrow.err().contains("but the projection must be [64, 32]"), narrow.err());
        MethodCliTest.assertUsage("--method refrag needs --passages INDEX (written by tandem index) and --projection FILE (a trained "
                + "chunk projection).", BARD_S, "--method", "refrag", "--passages", index.toString());
        MethodCliTest.assertUsage("--expand must be a fraction in [0, 1], but was 1.5.", BARD_S, "--method", "refrag", "--passages",
                index.toString(), "--projection", projection.toString(), "--expand", "1.5");
    }

    static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
