package dev.tandem.transformer.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.regex.Pattern;

/**
 * The GPT-2 byte-level alphabet: every byte value spelled as one printable, non-whitespace character,
 * so that byte-level BPE vocabularies are strings (e.g. {@code "Ġthe"} for the bytes of {@code " the"}).
 */
final class ByteLevel {

    /** The GPT-2 pre-tokenizer pattern, exactly as the Hugging Face ByteLevel pre-tokenizer writes it. */
    static final String GPT2_PATTERN =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    /** Byte value to the printable character GPT-2 spells it with. */
    private static final char[] BYTE_TO_CHAR = new char[256];
    /** The inverse, indexed by character; -1 for characters outside the byte-level alphabet. */
    private static final int[] CHAR_TO_BYTE = new int[0x144];

    static {
        // Printable Latin-1 bytes stand for themselves; the rest (controls, space, 0x7F-0xA0, 0xAD) are
        // moved to U+0100 upwards in byte order, so every token is a printable, whitespace-free string.
        Arrays.fill(CHAR_TO_BYTE, -1);
        int shifted = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + shifted++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private ByteLevel() {}

    /** Compiles the GPT-2 pattern the way {@link OnigurumaRegex} compiles every tokenizer.json regex. */
    static Pattern gpt2Pattern() {
        return Pattern.compile(GPT2_PATTERN, OnigurumaRegex.FLAGS);
    }

    /** {@code text}'s UTF-8 bytes spelled in the byte-level alphabet. */
    static String spell(String text) {
        return spell(text.getBytes(StandardCharsets.UTF_8));
    }

    /** The bytes spelled in the byte-level alphabet, one character per byte. */
    static String spell(byte[] bytes) {
        char[] chars = new char[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            chars[i] = BYTE_TO_CHAR[bytes[i] & 0xFF];
        }
        return new String(chars);
    }

    /**
     * The bytes a token stands for. As the Rust ByteLevel decoder does, a token with any character
     * outside the alphabet (an added token such as {@code "<|reserved special token|>"}, whose space is
     * not in it) stands for its own UTF-8 as a whole rather than character by character.
     */
    static byte[] bytesOf(String token) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(token.length());
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            int b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
            if (b < 0) {
                return token.getBytes(StandardCharsets.UTF_8);
            }
            out.write(b);
        }
        return out.toByteArray();
    }
}
