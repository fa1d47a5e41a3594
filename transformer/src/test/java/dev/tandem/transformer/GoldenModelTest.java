package dev.tandem.transformer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Tandem reproduces float32 reference outputs: for every case of a model directory's {@code golden.json},
 * the tokenizer gives the case's prompt ids, the logits at the last prompt position are within
 * {@value #LOGIT_TOLERANCE} (max abs) of the reference, and greedy decoding (through the KV cache)
 * follows the reference's greedy path exactly.
 *
 * <p>The model directories checked are
 * <ol>
 *   <li>the three shipped trained models, {@code models/bard-s}, {@code bard-m} and {@code bard-l}
 *       (llama, f32, no biases);</li>
 *   <li>every directory under the test resource {@code families/} — small random-weight checkpoints of
 *       each supported family and weight dtype (llama bf16 with llama3 RoPE and biases, mistral with
 *       head_dim ≠ hidden/heads, qwen2 tied with linear RoPE, qwen3 f16 with q/k norms), made by
 *       {@code tools/goldens/make_family_goldens.py} (see {@code families/README.md});</li>
 *   <li>any extra directories named in the system property {@value #EXTRA_MODELS_PROPERTY}, a
 *       comma-separated list of paths (relative ones resolve against the test's working directory, the
 *       {@code transformer} module). This is how to check a real checkpoint of your own: put a
 *       {@code golden.json} in its directory, in the format the bard and family goldens use
 *       ({@code {"cases": [{"prompt", "prompt_ids", "last_logits", "greedy_ids", ...}]}}, float32
 *       outputs, prompt ids without BOS), then run
 *       <pre>
 *   ./mvnw -B -o -pl transformer test -Dtest=GoldenModelTest -Dsurefire.failIfNoSpecifiedTests=false \
 *       -Dtandem.golden.models=/path/to/checkpoint,/path/to/another
 *       </pre>
 *       A listed directory without {@code golden.json} fails the test.</li>
 * </ol>
 * Each case prints its max abs logit difference.
 */
class GoldenModelTest {

    /** System property: extra model directories to check, comma-separated. */
    static final String EXTRA_MODELS_PROPERTY = "tandem.golden.models";
    /** Largest allowed |logit − reference| at the last prompt position. */
    static final double LOGIT_TOLERANCE = 1e-4;
    static final String GOLDEN_FILE = "golden.json";

    /** A model directory to check and the name its cases are reported under. */
    record ModelDir(String label, Path dir) {
    }

    static List<ModelDir> modelDirs() throws IOException {
        return modelDirs(true);
    }

    /**
     * The model directories; without {@code requireFamilies}, the family checkpoints only where the test resource
     * folder {@code families/} is on the classpath (a GPU bundle leaves it behind: bench/gpu/prepare.sh).
     */
    static List<ModelDir> modelDirs(boolean requireFamilies) throws IOException {
        List<ModelDir> dirs = new ArrayList<>();
        for (String name : new String[] {"bard-s", "bard-m", "bard-l"}) {
            dirs.add(new ModelDir(name, TestModels.model(name)));
        }
        if (!requireFamilies && GoldenModelTest.class.getResource("/families") == null) {
            return dirs;
        }
        Path families = familiesDir();
        List<Path> familyDirs;
        try (Stream<Path> s = Files.list(families)) {
            familyDirs = s.filter(Files::isDirectory).sorted().toList();
        }
        assertTrue(familyDirs.size() >= 4, "expected the family checkpoints (llama, mistral, qwen2, qwen3) under "
                + families + ", found " + familyDirs);
        for (Path d : familyDirs) {
            dirs.add(new ModelDir("families/" + d.getFileName(), d));
        }
        String extra = System.getProperty(EXTRA_MODELS_PROPERTY, "");
        for (String p : extra.split(",")) {
            if (!p.isBlank()) {
                dirs.add(new ModelDir(p.strip(), Path.of(p.strip()).toAbsolutePath()));
            }
        }
        return dirs;
    }

    /** The test resource folder {@code families/}, from the test classpath. */
    static Path familiesDir() {
        URL url = GoldenModelTest.class.getResource("/families");
        assertNotNull(url, "test resource folder families/ is not on the test classpath");
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException("bad resource URL " + url, e);
        }
    }

    /**
     * One argument set per golden case: (label, directory, case index, case). A directory without a
     * golden.json (or with no cases) gives one argument set with a null case, which fails.
     */
    static Stream<Arguments> cases() throws IOException {
        return cases(true);
    }

    /** {@link #cases()} over {@link #modelDirs(boolean)}. */
    static Stream<Arguments> cases(boolean requireFamilies) throws IOException {
        ObjectMapper mapper = new ObjectMapper();
        List<Arguments> out = new ArrayList<>();
        for (ModelDir m : modelDirs(requireFamilies)) {
            Path golden = m.dir().resolve(GOLDEN_FILE);
            JsonNode cases = Files.isRegularFile(golden) ? mapper.readTree(golden.toFile()).get("cases") : null;
            if (cases == null || !cases.isArray() || cases.isEmpty()) {
                out.add(Arguments.of(m.label(), m.dir(), -1, null));
                continue;
            }
            int i = 0;
            for (JsonNode c : cases) {
                out.add(Arguments.of(m.label(), m.dir(), i++, c));
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} case {2}")
    @MethodSource("cases")
    void logitsAndGreedyPathMatchTheReference(String label, Path dir, int index, JsonNode c) {
        if (c == null) {
            fail(label + ": " + dir.resolve(GOLDEN_FILE) + " is missing or has no cases"
                    + (Files.isDirectory(dir) ? "" : " (" + dir + " is not a directory)"));
        }
        String what = label + " case " + index;
        try (LanguageModel model = ModelLoader.load(dir)) {
            int[] promptIds = TestModels.ints(c.get("prompt_ids"));
            assertArrayEquals(promptIds, model.tokenizer().encode(c.get("prompt").asText()), what + ": tokenizer ids");

            JsonNode expected = c.get("last_logits");
            try (KvSequence seq = model.newSequence()) {
                float[] logits = model.forward(Batch.of(Batch.Entry.continuation(seq, promptIds))).lastLogits(0);
                assertEquals(expected.size(), logits.length, what + ": number of logits");
                double maxDiff = 0;
                for (int i = 0; i < logits.length; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(logits[i] - expected.get(i).asDouble()));
                }
                System.out.printf("%s: max abs logit difference %.3g%n", what, maxDiff);
                assertTrue(maxDiff <= LOGIT_TOLERANCE, what + ": max |logit − reference| = " + maxDiff);

                int[] greedy = TestModels.ints(c.get("greedy_ids"));
                int[] got = new int[greedy.length];
                for (int step = 0; step < greedy.length; step++) {
                    got[step] = TestModels.argmax(logits);
                    if (step + 1 < greedy.length) {
                        logits = model.forward(Batch.of(Batch.Entry.continuation(seq, got[step]))).lastLogits(0);
                    }
                }
                assertArrayEquals(greedy, got, what + ": greedy path");
            }
        }
    }
}
