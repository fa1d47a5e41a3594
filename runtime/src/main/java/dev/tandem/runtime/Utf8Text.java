package dev.tandem.runtime;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Strict UTF-8 for the JSON files a user hands us ({@code config.json}, {@code tokenizer.json}, a
 * safetensors header): JSON exchanged between systems is UTF-8 (RFC 8259), and a parser that decodes
 * leniently — or skips the strings it does not read — would let a corrupt byte become U+FFFD without a
 * word. (JSON-lines input is checked line by line with {@link #firstInvalidByte}, by the app's
 * {@code JsonLines}.)
 */
public final class Utf8Text {
    private Utf8Text() {
    }

    /**
     * Returns quietly when {@code bytes} is valid UTF-8 (a byte-order mark allowed); otherwise throws a
     * sentence naming {@code what} and the line and byte of the first bad sequence.
     *
     * @throws TandemException when a byte sequence is not UTF-8
     */
    public static void requireValid(byte[] bytes, String what) {
        int bad = firstInvalidByte(bytes);
        if (bad < 0) {
            return;
        }
        int line = 1;
        int lineStart = 0;
        for (int i = 0; i < bad; i++) {
            if (bytes[i] == '\n') {
                line++;
                lineStart = i + 1;
            }
        }
        throw new TandemException(what + " is not valid UTF-8 at line " + line + ", byte " + (bad - lineStart + 1)
                + " of the line (byte " + bad + " of the file); it must be UTF-8 text.");
    }

    /** The offset of the first byte of the first sequence that is not UTF-8, or -1 when there is none. */
    public static int firstInvalidByte(byte[] bytes) {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(8192);
        while (true) {
            CoderResult r = decoder.decode(in, out, true);
            if (r.isError()) {
                return in.position();
            }
            if (r.isUnderflow()) {
                r = decoder.flush(out);
                return r.isError() ? in.position() : -1;
            }
            out.clear(); // overflow: only the verdict matters, not the text
        }
    }
}
