package dev.tandem.decoding.mix;

import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.Generator;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * caad's grounding store: its pairs against separate forward passes of bard-l, retrieval by cosine similarity, the saved
 * store reused while the grounding file and the model stay the same and built again when either changes, and each bad
 * grounding file refused in one sentence.
 */
class GroundingStoreTest {
    /** A few Shakespeare lines as examples (a blank line among them); line 5 has an empty text, the BOS token alone. */
    static final String GROUNDING = """
            {"text": "KING RICHARD III:", "continuation": "\\nNow is the winter of our discontent\\nMade glorious summer by this sun of York;"}
            {"text": "ROMEO:", "continuation": "\\nBut, soft! what light through yonder window breaks?\\nIt is the east, and Juliet is the sun."}

            {"text": "HAMLET:", "continuation": "\\nTo be, or not to be, that is the question:"}
            {"text": "", "continuation": "First Citizen:\\nBefore we proceed any further, hear me speak."}
            """;
    @TempDir
    static Path dir;
    static LanguageModel large;
    static GroundingStore store;

    @BeforeAll
    static void load() throws IOException {
        large = ModelLoader.load(TestModels.model("bard-l"));
        store = GroundingStore.open(large, write("shakespeare.jsonl", GROUNDING));
    }

    @AfterAll
    static void close() {
        large.close();
    }

    private static Path write(String name, String text) throws IOException {
        return Files.writeString(dir.resolve(name), text);
    }

    /** {@code model}'s final normalised state and logits at the end of {@code prompt}, then after each of {@code tokens} but the last, pass by pass. */
    static List<float[][]> separatePasses(LanguageModel model, int[] prompt, int[] tokens) {
        List<float[][]> out = new ArrayList<>();
        try (KvSequence kv = model.newSequence()) {
            ForwardResult r = model.forward(Batch.of(Batch.Entry.continuation(kv, prompt).withNormedRows(prompt.length - 1)));
            out.add(new float[][] {r.normedHidden(0, 0), r.lastLogits(0)});
            for (int i = 0; i + 1 < tokens.length; i++) {
                r = model.forward(Batch.of(Batch.Entry.continuation(kv, tokens[i]).withNormedRows(0)));
                out.add(new float[][] {r.normedHidden(0, 0), r.lastLogits(0)});
            }
        }
        return out;
    }

    private static void assertClose(float[] expected, float[] got, String what) {
        assertEquals(expected.length, got.length, what);
        for (int t = 0; t < expected.length; t++) {
            assertEquals(expected[t], got[t], 1e-5 * Math.max(1, Math.abs(expected[t])), what + " [" + t + "]");
        }
    }

    @Test
    void theStoreHoldsEachContinuationTokensStateAndLogitsFromSeparatePasses() {
        String[][] examples = {
                {"KING RICHARD III:", "\nNow is the winter of our discontent\nMade glorious summer by this sun of York;"},
                {"ROMEO:", "\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun."},
                {"HAMLET:", "\nTo be, or not to be, that is the question:"},
                {"", "First Citizen:\nBefore we proceed any further, hear me speak."}};
        int[] lines = {1, 2, 4, 5};
        int pair = 0;
        for (int e = 0; e < examples.length; e++) {
            int[] prompt = new Generator(large).promptIds(GenerationRequest.of(examples[e][0]));
            int[] continuation = large.tokenizer().encode(examples[e][1]);
            List<float[][]> passes = separatePasses(large, prompt, continuation);
            assertEquals(continuation.length, passes.size());
            for (float[][] p : passes) {
                String what = "line " + lines[e] + " pair " + pair;
                assertEquals(lines[e], store.line(pair), what);
                assertClose(p[0], store.state(pair), what + " state");
                assertClose(p[1], store.logits(pair), what + " logits");
                pair++;
            }
        }
        assertEquals(pair, store.size(), "one pair per continuation token");
        assertEquals(large.config().hiddenSize(), store.hiddenSize());
        assertEquals(large.config().vocabSize(), store.vocabSize());
        assertEquals(dir.resolve("shakespeare.jsonl.bard-l.caad-store"), store.file());
    }

    @Test
    void retrievalRanksByCosineAndWeighsOnlyPositiveSimilarities() {
        for (int i : new int[] {0, 7, store.size() - 1}) {
            GroundingStore.Neighbours n = store.nearest(store.state(i), 3);
            assertEquals(i, n.pairs()[0], "a stored state is its own nearest pair");
            assertEquals(1.0, n.similarities()[0], 1e-12);
            assertTrue(n.similarities()[0] >= n.similarities()[1] && n.similarities()[1] >= n.similarities()[2]);
        }
        assertEquals(store.size(), store.nearest(store.state(0), 1000).pairs().length, "every pair when N exceeds the store");
        float[] scaled = store.state(3);
        for (int j = 0; j < scaled.length; j++) {
            scaled[j] *= -2; // pointing the other way: every similarity flips its sign
        }
        assertEquals(-1.0, store.nearest(scaled, store.size()).similarities()[store.size() - 1], 1e-12);
        assertArrayEquals(store.logits(2), store.meanLogits(new GroundingStore.Neighbours(new int[] {2, 5}, new double[] {0.5, -0.25})),
                "a negative similarity weighs nothing");
        assertArrayEquals(new float[store.vocabSize()], store.meanLogits(new GroundingStore.Neighbours(new int[] {2, 5},
                new double[] {0, -0.25})), "no positive similarity: no grounding");
        float[] zero = new float[store.hiddenSize()];
        assertArrayEquals(new int[] {0, 1}, store.nearest(zero, 2).pairs(), "equal similarities: the lower index first");
    }

    @Test
    void theSavedStoreIsReusedUntilTheGroundingFileChanges() throws IOException {
        Path file = write("reuse.jsonl", "{\"text\": \"ROMEO:\", \"continuation\": \" O, she doth teach the torches to burn bright!\"}\n");
        List<long[]> progress = new ArrayList<>();
        GroundingStore first = GroundingStore.open(large, file, (done, total) -> progress.add(new long[] {done, total}));
        assertTrue(first.built());
        assertArrayEquals(new long[] {first.size(), first.size()}, progress.getLast(), "progress ends at every pair");
        GroundingStore again = GroundingStore.open(large, file);
        assertFalse(again.built(), "an unchanged file reuses its store");
        assertArrayEquals(first.logits(first.size() - 1), again.logits(first.size() - 1));

        Files.writeString(file, "\n", StandardOpenOption.APPEND);
        assertTrue(GroundingStore.open(large, file).built(), "any change of the file's bytes builds the store again");
        Files.writeString(file, "{\"text\": \"JULIET:\", \"continuation\": \" Good night, good night!\"}\n",
                StandardOpenOption.APPEND);
        GroundingStore grown = GroundingStore.open(large, file);
        assertTrue(grown.built());
        assertTrue(grown.size() > first.size());
        assertFalse(GroundingStore.open(large, file).built());

        byte[] saved = Files.readAllBytes(grown.file());
        Files.write(grown.file(), Arrays.copyOf(saved, saved.length - 4));
        assertTrue(GroundingStore.open(large, file).built(), "a store cut short is built again");
        assertArrayEquals(saved, Files.readAllBytes(grown.file()));
        try (Stream<Path> files = Files.list(dir)) {
            assertTrue(files.noneMatch(p -> p.getFileName().toString().contains(".partial-")), "no partial file is left");
        }

        Files.writeString(grown.file(), "notes");
        assertEquals(grown.file() + " exists but is not a Tandem grounding store; move it away or delete it so that the store can be "
                + "saved there.", assertThrows(TandemException.class, () -> GroundingStore.open(large, file)).getMessage());
    }

    private static String refusal(String name, byte[] content) throws IOException {
        Path file = dir.resolve(name);
        Files.write(file, content);
        String message = assertThrows(TandemException.class, () -> GroundingStore.open(large, file)).getMessage();
        assertFalse(Files.exists(GroundingStore.storeFile(large, file)), "a refused file leaves no store");
        return message;
    }

    private static String refusal(String name, String content) throws IOException {
        return refusal(name, content.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void badGroundingFilesAreOneSentence() throws IOException {
        String forms = "; write each example as {\"text\": TEXT, \"continuation\": TEXT}, one per line.";
        assertEquals("the grounding file " + dir.resolve("empty.jsonl") + " holds no examples" + forms, refusal("empty.jsonl", ""));
        assertEquals("the grounding file " + dir.resolve("blank.jsonl") + " holds no examples" + forms, refusal("blank.jsonl", "\n  \n"));
        assertEquals(dir.resolve("bad.jsonl") + " line 2 is not valid JSON at column 10" + forms,
                refusal("bad.jsonl", "{\"text\": \"a\", \"continuation\": \"b\"}\n{\"text\": }\n"));
        assertEquals(dir.resolve("missing.jsonl") + " line 1 has no \"continuation\" field" + forms,
                refusal("missing.jsonl", "{\"text\": \"ROMEO:\"}\n"));
        assertEquals(dir.resolve("number.jsonl") + " line 1 has a \"text\" that is a JSON number, not a string.",
                refusal("number.jsonl", "{\"text\": 3, \"continuation\": \"b\"}\n"));
        assertEquals(dir.resolve("array.jsonl") + " line 1 is a JSON array, not an object" + forms, refusal("array.jsonl", "[1]\n"));
        assertEquals(dir.resolve("two.jsonl") + " line 1 holds more than one JSON value" + forms,
                refusal("two.jsonl", "{\"text\": \"a\", \"continuation\": \"b\"} {}\n"));
        assertEquals(dir.resolve("twice.jsonl") + " line 1 has the field \"text\" twice at column 21" + forms,
                refusal("twice.jsonl", "{\"text\": \"a\", \"text\": \"b\", \"continuation\": \"c\"}\n"));
        assertEquals(dir.resolve("extra.jsonl") + " line 1 has the field \"answer\", which a grounding example does not take; give "
                + "\"text\" and \"continuation\".", refusal("extra.jsonl", "{\"text\": \"a\", \"continuation\": \"b\", \"answer\": \"c\"}\n"));
        assertEquals(dir.resolve("nothing.jsonl") + " line 1 has an empty \"continuation\"; the store holds a pair per continuation "
                + "token, so give at least one.", refusal("nothing.jsonl", "{\"text\": \"a\", \"continuation\": \"\"}\n"));
        byte[] good = "{\"text\": \"a\", \"continuation\": \"b\"}\n".getBytes(StandardCharsets.UTF_8);
        byte[] latin1 = Arrays.copyOf(good, 2 * good.length);
        System.arraycopy(good, 0, latin1, good.length, good.length);
        latin1[good.length + 10] = (byte) 0xE9; // the "a" of line 2 as ISO-8859-1 writes é
        assertEquals(dir.resolve("latin1.jsonl") + " line 2 is not valid UTF-8" + forms, refusal("latin1.jsonl", latin1));
        String longText = "word ".repeat(large.config().maxContext());
        String tooLong = refusal("long.jsonl", "{\"text\": \"" + longText + "\", \"continuation\": \"b\"}\n");
        assertTrue(tooLong.startsWith(dir.resolve("long.jsonl") + " line 1's \"text\": the prompt has ")
                && tooLong.contains("more than the model's context"), tooLong);
        String longContinuation = refusal("long2.jsonl", "{\"text\": \"a\", \"continuation\": \"" + longText + "\"}\n");
        assertTrue(longContinuation.startsWith(dir.resolve("long2.jsonl") + " line 1's text and continuation come to ")
                && longContinuation.contains("more than the model's context"), longContinuation);
        assertEquals("the grounding file " + dir.resolve("absent.jsonl") + " does not exist.",
                assertThrows(TandemException.class, () -> GroundingStore.open(large, dir.resolve("absent.jsonl"))).getMessage());
    }
}
