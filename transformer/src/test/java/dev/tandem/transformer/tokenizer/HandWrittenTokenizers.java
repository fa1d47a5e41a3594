package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/** Small tokenizer.json files written by tests, to check one rule of the format at a time. */
final class HandWrittenTokenizers {
    private static final ObjectMapper JSON = new ObjectMapper();

    private HandWrittenTokenizers() {}

    /**
     * Writes and loads a BPE tokenizer.json whose vocabulary is {@code vocab} (ids 0, 1, ... in order)
     * with no merges, and whose other fields come from {@code fields}, a JSON object (its {@code "model"}
     * entries are added to the model, e.g. merges or byte_fallback).
     */
    static PipelineTokenizer load(Path dir, List<String> vocab, String fields) {
        try {
            ObjectNode root = JSON.createObjectNode();
            ObjectNode model = root.putObject("model").put("type", "BPE");
            ObjectNode vocabNode = model.putObject("vocab");
            for (int i = 0; i < vocab.size(); i++) {
                vocabNode.put(vocab.get(i), i);
            }
            model.putArray("merges");
            JsonNode extra = JSON.readTree(fields);
            for (Map.Entry<String, JsonNode> e : extra.properties()) {
                if (e.getKey().equals("model")) {
                    model.setAll((ObjectNode) e.getValue());
                } else {
                    root.set(e.getKey(), e.getValue());
                }
            }
            Path file = Files.createTempFile(dir, "tokenizer", ".json");
            JSON.writeValue(file.toFile(), root);
            return (PipelineTokenizer) Tokenizers.load(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The printable ASCII characters, space first: as a vocabulary, character c has id c - 32. */
    static List<String> printableAscii() {
        return IntStream.rangeClosed(32, 126).mapToObj(Character::toString).toList();
    }

    /** The ids of {@code text} under {@link #printableAscii()}, one per character. */
    static int[] asciiIds(String text) {
        return text.chars().map(c -> c - 32).toArray();
    }
}
