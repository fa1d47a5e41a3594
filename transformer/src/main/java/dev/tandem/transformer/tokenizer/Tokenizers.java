package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.runtime.TandemException;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;

/** Loads tokenizers from Hugging Face {@code tokenizer.json} files. */
public final class Tokenizers {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Tokenizers() {}

    /**
     * Reads a {@code tokenizer.json}, plain or gzip-compressed (recognised by its magic bytes, whatever
     * the file is called), and builds the tokenizer it describes. Only byte-level BPE is supported.
     *
     * @throws TandemException if the file is missing or unreadable, is not JSON, or describes an
     *     unsupported tokenizer; the message names the file
     */
    public static Tokenizer load(Path tokenizerJson) {
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new TandemException("tokenizer file not found: " + tokenizerJson + ".");
        }
        String where = "tokenizer.json at " + tokenizerJson;
        JsonNode root = parse(tokenizerJson, where);
        if (root == null || root.isMissingNode()) {
            throw new TandemException(where + " is empty.");
        }
        if (!root.isObject()) {
            throw new TandemException(where + ": the top level is not a JSON object.");
        }
        String type = root.path("model").path("type").asText("");
        // Files written by old versions of the Rust crate may omit model.type; BPE is the one with merges.
        if (type.isEmpty() && root.path("model").has("merges")) {
            type = "BPE";
        }
        if (!type.equals("BPE")) {
            String shown = type.isEmpty() ? "is missing" : "\"" + type + "\" is not supported";
            throw new TandemException(where + ": model.type " + shown + " (byte-level BPE only).");
        }
        return ByteLevelBpeTokenizer.fromJson(root, where);
    }

    private static JsonNode parse(Path file, String where) {
        byte[] raw;
        try {
            raw = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new TandemException("could not read tokenizer file " + file + " (" + e + ").", e);
        }
        boolean gzip = raw.length >= 2 && (raw[0] & 0xFF) == 0x1F && (raw[1] & 0xFF) == 0x8B;
        try (InputStream in = gzip
                ? new GZIPInputStream(new ByteArrayInputStream(raw))
                : new ByteArrayInputStream(raw)) {
            return JSON.readTree(in);
        } catch (JacksonException e) {
            JsonLocation at = e.getLocation();
            String position = at == null ? "" : " at line " + at.getLineNr() + ", column " + at.getColumnNr();
            // Jackson's own message spans lines and quotes the source; keep its first line only.
            String reason = String.valueOf(e.getOriginalMessage()).lines().findFirst().orElse("").strip();
            throw new TandemException(where + " is not valid JSON" + position + " (" + reason + ").", e);
        } catch (IOException e) {
            throw new TandemException(where + " could not be decompressed as gzip (" + e.getMessage() + ").", e);
        }
    }
}
