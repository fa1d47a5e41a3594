package dev.tandem.transformer.tokenizer;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/** UTF-8 decisions for decoding bytes that arrive a token at a time. */
final class Utf8 {
    private Utf8() {}

    /**
     * The length of the prefix of {@code buf[0, length)} that can be decoded now, with malformed bytes
     * replaced the way Java's decoder replaces them: everything but a trailing sequence whose rendering
     * still depends on bytes not yet seen. Cutting there cannot change how the bytes decode: the held
     * sequence starts with a non-continuation byte, and Java's decoder always starts afresh at one (a
     * malformed sequence before it is replaced without swallowing it), and an unfinished sequence before
     * the cut is replaced the same way whether it is cut short or broken by that byte.
     */
    static int completePrefixLength(byte[] buf, int length) {
        // Walk back over at most three continuation bytes to the byte that would lead the last character.
        int lead = length - 1;
        int continuations = 0;
        while (lead >= 0 && continuations < 3 && isContinuation(buf[lead])) {
            lead--;
            continuations++;
        }
        if (lead < 0) {
            return length; // only continuation bytes: malformed whatever follows
        }
        int first = buf[lead] & 0xFF;
        int need = sequenceLength(first);
        int have = length - lead;
        if (need <= 1 || have >= need) {
            return length; // ASCII, a byte that never leads, or a run long enough to be decided now
        }
        if (have >= 2 && rejectsSecondByte(first, buf[lead + 1] & 0xFF)) {
            return length; // the decoder replaces the lead at once, whatever comes next
        }
        return lead;
    }

    /** Whether no bytes appended to {@code buf[0, length)} can make it valid UTF-8. */
    static boolean isMalformedPrefix(byte[] buf, int length) {
        CoderResult result = strictDecoder().decode(ByteBuffer.wrap(buf, 0, length), CharBuffer.allocate(length), false);
        return result.isError();
    }

    /** {@code buf[0, length)} decoded, or null if it is not entirely valid UTF-8. */
    static String decodeStrict(byte[] buf, int length) {
        try {
            return strictDecoder().decode(ByteBuffer.wrap(buf, 0, length)).toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }

    /** Rejects what Rust's {@code String::from_utf8} rejects: overlong forms, surrogates, past U+10FFFF. */
    private static CharsetDecoder strictDecoder() {
        return StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
    }

    private static boolean isContinuation(byte b) {
        return (b & 0xC0) == 0x80;
    }

    /**
     * Bytes in the sequence a lead byte starts, as Java's decoder reads them; 0 for bytes it replaces
     * on their own (continuations, C0, C1, F5..FF).
     */
    private static int sequenceLength(int lead) {
        if (lead < 0x80) {
            return 1;
        } else if (lead >= 0xC2 && lead <= 0xDF) {
            return 2;
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            return 3;
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            return 4;
        }
        return 0;
    }

    /**
     * Whether Java's decoder replaces {@code lead} alone on seeing this second byte. This follows the
     * JDK, not the Unicode "maximal subpart" rule: the JDK replaces an encoded surrogate
     * (ED A0..BF xx) as one three-byte unit, so after ED any continuation byte must wait for the third.
     */
    private static boolean rejectsSecondByte(int lead, int second) {
        return switch (lead) {
            case 0xE0 -> second < 0xA0 || second > 0xBF; // overlong
            case 0xF0 -> second < 0x90 || second > 0xBF; // overlong
            case 0xF4 -> second < 0x80 || second > 0x8F; // past U+10FFFF
            default -> (second & 0xC0) != 0x80;
        };
    }
}
