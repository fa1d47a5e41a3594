package dev.tandem.transformer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Utf8Text;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The one JSON-lines reader of every user's JSON-lines input ({@code generate --prompt-file}, {@code tokenize} and
 * {@code embed} on stdin, a CAAD grounding file):
 * strict UTF-8, one JSON value per line (anything after it is an error), a repeated object field an
 * error, blank lines skipped. Every refusal is one sentence naming the source and the line, in our own
 * words (no parser's text).
 */
public final class JsonLines {
    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();

    /** Receives each non-blank line's value. */
    @FunctionalInterface
    public interface LineHandler {
        void accept(int lineNumber, String where, JsonNode value) throws IOException;
    }

    private final InputStream in;
    private final String source;

    /**
     * @param source what the sentences call the input, e.g. {@code stdin} or {@code the prompt file F}; a
     *               line is named "{@code SOURCE line N}"
     */
    public JsonLines(InputStream in, String source) {
        this.in = new BufferedInputStream(in);
        this.source = source;
    }

    /** The next line's bytes without its {@code \n} (or {@code \r\n}), or null at the end. */
    private byte[] nextLine() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b = in.read();
        if (b == -1) {
            return null;
        }
        while (b != -1 && b != '\n') {
            line.write(b);
            b = in.read();
        }
        byte[] bytes = line.toByteArray();
        return bytes.length > 0 && bytes[bytes.length - 1] == '\r' ? Arrays.copyOf(bytes, bytes.length - 1) : bytes;
    }

    /** The repeated field's name, from the parser's state (not its message), or null. */
    private static String duplicateField(JsonProcessingException e) {
        try {
            return e.getProcessor() instanceof com.fasterxml.jackson.core.JsonParser p ? p.currentName() : null;
        } catch (IOException | RuntimeException ignored) {
            return null;
        }
    }

    /**
     * Reads to the end, handing each line's value to {@code handler} as soon as it is read (so a reply to
     * a line can go out before the next line arrives).
     *
     * @param forms how valid lines are written, ending every sentence that refuses a line (null for none)
     * @throws TandemException at the first line that is not valid UTF-8, not valid JSON, or holds more than one value
     */
    public void forEach(String forms, LineHandler handler) throws IOException {
        String tail = forms == null ? "." : "; " + forms + ".";
        int lineNumber = 0;
        while (true) {
            byte[] bytes = nextLine();
            if (bytes == null) {
                return;
            }
            lineNumber++;
            // Checked line by line, so that a bad byte is blamed on its own line.
            if (Utf8Text.firstInvalidByte(bytes) >= 0) {
                throw new TandemException(source + " line " + lineNumber + " is not valid UTF-8" + tail);
            }
            String line = new String(bytes, StandardCharsets.UTF_8);
            if (lineNumber == 1 && line.startsWith("\uFEFF")) {
                line = line.substring(1); // a byte-order mark some editors write
            }
            if (line.isBlank()) {
                continue;
            }
            String where = source + " line " + lineNumber;
            JsonNode value;
            try {
                value = JSON.readTree(line);
            } catch (MismatchedInputException e) {
                throw new TandemException(where + " holds more than one JSON value" + tail);
            } catch (JsonProcessingException e) {
                String at = e.getLocation() != null && e.getLocation().getColumnNr() > 0
                        ? " at column " + e.getLocation().getColumnNr() : "";
                boolean duplicate = e.getOriginalMessage() != null && e.getOriginalMessage().startsWith("Duplicate field");
                String field = duplicate ? duplicateField(e) : null;
                throw new TandemException(where + (duplicate ? " has the field " + (field == null ? "" : "\"" + field + "\" ") + "twice"
                        : " is not valid JSON") + at + tail);
            }
            handler.accept(lineNumber, where, value);
        }
    }
}
