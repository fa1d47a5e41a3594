package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.params.provider.Arguments;

/**
 * The reference tokenizers of the test resource {@code tokenizers/} (real spm32k, llama3 and qwen3
 * {@code tokenizer.json} files, see its README.md) and their golden encodings, loaded once per run.
 */
final class ReferenceTokenizers {
    static final List<String> NAMES = List.of("spm32k", "llama3", "qwen3");
    private static final Map<String, Tokenizer> LOADED = new ConcurrentHashMap<>();

    private ReferenceTokenizers() {}

    /** The tokenizer.json.gz of {@code name}. */
    static Path file(String name) {
        return resource("/tokenizers/" + name + "/tokenizer.json.gz");
    }

    static Tokenizer load(String name) {
        return LOADED.computeIfAbsent(name, n -> Tokenizers.load(file(n)));
    }

    /** Golden cases of every reference tokenizer: (name, text, ids). */
    static List<Arguments> goldenCases() {
        JsonNode golden;
        try {
            golden = new ObjectMapper().readTree(resource("/tokenizers/golden.json").toFile()).path("tokenizers");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        List<Arguments> cases = new ArrayList<>();
        for (String name : NAMES) {
            for (JsonNode c : golden.path(name)) {
                int[] ids = new int[c.path("ids").size()];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = c.path("ids").get(i).intValue();
                }
                cases.add(Arguments.of(name, c.path("text").textValue(), ids));
            }
        }
        return cases;
    }

    static String nfc(String text) {
        return Normalizer.normalize(text, Normalizer.Form.NFC);
    }

    /** Decodes {@code ids} one push at a time, checking that every push is whole text. */
    static String streamed(Tokenizer tokenizer, int[] ids) {
        StreamingDecoder decoder = tokenizer.streamingDecoder();
        StringBuilder text = new StringBuilder();
        for (int id : ids) {
            String piece = decoder.push(id);
            if (hasLoneSurrogate(piece)) {
                throw new AssertionError("push of " + id + " returned half a character: " + piece);
            }
            text.append(piece);
        }
        return text.append(decoder.flush()).toString();
    }

    static boolean hasLoneSurrogate(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return true;
            }
        }
        return false;
    }

    private static Path resource(String name) {
        URL url = ReferenceTokenizers.class.getResource(name);
        if (url == null) {
            throw new IllegalStateException("test resource " + name + " is not on the test classpath");
        }
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException("bad resource URL " + url, e);
        }
    }
}
