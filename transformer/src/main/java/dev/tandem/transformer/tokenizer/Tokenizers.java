package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.io.JsonEOFException;
import com.fasterxml.jackson.databind.JsonNode;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Utf8Text;
import java.io.ByteArrayInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/** Loads tokenizers from Hugging Face {@code tokenizer.json} files. */
public final class Tokenizers {
    /** The most a gzip-compressed tokenizer.json may decompress to: 512 MiB. */
    static final int MAX_TOKENIZER_BYTES = 512 << 20;

    private Tokenizers() {}

    /**
     * Reads a {@code tokenizer.json}, plain or gzip-compressed (recognised by its magic bytes, whatever
     * the file is called), and builds the tokenizer it describes. Supported: the BPE model (byte-level
     * as in GPT-2, Llama 3 and Qwen, or SentencePiece-style with byte fallback as in Llama 2 and
     * Mistral) and the WordPiece model (BERT, e.g. all-MiniLM-L6-v2) with the common normalizers,
     * pre-tokenizers, post-processors and decoders; see {@link Tokenizer} for what encoding and
     * decoding do. The file's {@code truncation} and {@code padding} are not applied: encoding never
     * cuts or pads, the caller fits ids to its model.
     *
     * @throws TandemException if the file is missing or unreadable, is not JSON, or describes an
     *     unsupported tokenizer (such as a Unigram model); the message names the file and the field
     */
    public static Tokenizer load(Path tokenizerJson) {
        return build(read(tokenizerJson));
    }

    /** Reads and checks a {@code tokenizer.json} file (plain or gzip) without building the tokenizer. */
    static TokenizerJson read(Path tokenizerJson) {
        if (Files.isDirectory(tokenizerJson)) {
            throw new TandemException("the tokenizer file " + tokenizerJson + " is a directory; give its tokenizer.json"
                    + " (or, on the command line, the model directory with --model).");
        }
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new TandemException("tokenizer file not found: " + tokenizerJson + ".");
        }
        return read(tokenizerJson, "tokenizer.json at " + tokenizerJson);
    }

    /** The tokenizer a read {@code tokenizer.json} (or one made from GGUF metadata) describes. */
    static Tokenizer build(TokenizerJson json) {
        String where = json.where;
        JsonNode model = json.root.path("model");
        if (!model.isObject()) {
            throw new TandemException(where + ": the \"model\" object is missing.");
        }
        String type = model.path("type").asText("");
        // Files written by old versions of the Rust crate may omit model.type: BPE is the one with
        // merges, WordPiece the one with max_input_chars_per_word.
        if (type.isEmpty() && json.merges != null) {
            type = "BPE";
        } else if (type.isEmpty() && model.has("max_input_chars_per_word")) {
            type = "WordPiece";
        }
        if (type.isEmpty()) {
            throw new TandemException(where + ": model.type is missing.");
        }
        TokenModel parsed = switch (type) {
            case "BPE" -> BpeModel.parse(model, json);
            case "WordPiece" -> WordPieceModel.parse(model, json);
            default -> throw new TandemException(where + ": model.type " + type
                    + " is not supported yet (only BPE and WordPiece).");
        };
        return PipelineTokenizer.fromJson(json, parsed);
    }

    private static TokenizerJson read(Path file, String where) {
        byte[] raw;
        try {
            raw = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new TandemException("could not read tokenizer file " + file + " (" + IoErrors.reason(e) + ").", e);
        }
        byte[] text = isGzip(raw) ? gunzip(raw, where) : raw;
        Utf8Text.requireValid(text, where);
        try (InputStream in = new ByteArrayInputStream(text)) {
            return TokenizerJson.read(in, where);
        } catch (JacksonException e) {
            // Our words, not Jackson's: its message quotes the source and names its own token types.
            JsonLocation at = e.getLocation();
            String position = at == null || at.getLineNr() < 0 ? "" : " at line " + at.getLineNr() + ", column " + at.getColumnNr();
            String cutShort = e instanceof JsonEOFException ? " (it ends in the middle of a value, so it is cut short)" : "";
            throw new TandemException(where + " is not valid JSON" + position + cutShort + ".", e);
        } catch (IOException e) {
            // Jackson's other complaints about its input (it reads from memory here, so no I/O fails).
            throw new TandemException(where + " is not valid JSON.", e);
        }
    }

    private static boolean isGzip(byte[] raw) {
        return raw.length >= 2 && (raw[0] & 0xFF) == 0x1F && (raw[1] & 0xFF) == 0x8B;
    }

    /** The decompressed bytes, at most {@link #MAX_TOKENIZER_BYTES} (a published tokenizer.json is tens of MB). */
    private static byte[] gunzip(byte[] raw, String where) {
        try (InputStream in = new GZIPInputStream(new ByteArrayInputStream(raw))) {
            byte[] text = in.readNBytes(MAX_TOKENIZER_BYTES + 1);
            if (text.length > MAX_TOKENIZER_BYTES) {
                throw new TandemException(where + " decompresses to more than " + (MAX_TOKENIZER_BYTES >> 20)
                        + " MiB, far more than any tokenizer needs, so it is not one.");
            }
            return text;
        } catch (EOFException e) {
            throw new TandemException(where + " could not be decompressed as gzip (the compressed data is cut short).", e);
        } catch (ZipException e) {
            throw new TandemException(where + " could not be decompressed as gzip (the compressed data is corrupt).", e);
        } catch (IOException e) {
            throw new TandemException(where + " could not be decompressed as gzip (" + IoErrors.reason(e) + ").", e);
        }
    }
}
