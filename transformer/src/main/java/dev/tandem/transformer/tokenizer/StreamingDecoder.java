package dev.tandem.transformer.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;

/**
 * Decodes one stream of token ids incrementally. A byte-level token may end in the middle of a UTF-8
 * character (an emoji is often two or three tokens), so {@link #push} holds back an incomplete
 * trailing sequence until the tokens completing it arrive, and never returns half a character.
 * Concatenating every {@code push} result and the final {@link #flush} gives exactly
 * {@link Tokenizer#decode} of all the ids.
 *
 * <p>Not thread-safe: one decoder per stream.
 */
public final class StreamingDecoder {
    private final Tokenizer tokenizer;
    /** Bytes of an incomplete trailing UTF-8 sequence (at most 3) carried to the next push. */
    private byte[] pending = new byte[16];
    private int pendingLength;

    public StreamingDecoder(Tokenizer tokenizer) {
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
    }

    /**
     * Adds one token and returns the text it completed (possibly empty). Malformed bytes are returned
     * as U+FFFD as soon as they are known to be malformed, exactly as {@code decode} renders them.
     *
     * @throws IllegalArgumentException if {@code id} names no token
     */
    public String push(int id) {
        byte[] bytes = tokenizer.tokenBytes(id);
        if (pendingLength + bytes.length > pending.length) {
            pending = Arrays.copyOf(pending, Math.max(pending.length * 2, pendingLength + bytes.length));
        }
        System.arraycopy(bytes, 0, pending, pendingLength, bytes.length);
        pendingLength += bytes.length;

        int complete = completePrefixLength(pending, pendingLength);
        String text = new String(pending, 0, complete, StandardCharsets.UTF_8);
        System.arraycopy(pending, complete, pending, 0, pendingLength - complete);
        pendingLength -= complete;
        return text;
    }

    /** Returns whatever is held back (an unfinished sequence becomes U+FFFD) and empties the decoder. */
    public String flush() {
        String text = new String(pending, 0, pendingLength, StandardCharsets.UTF_8);
        pendingLength = 0;
        return text;
    }

    /**
     * The length of the prefix that can be decoded now: everything but a trailing sequence whose
     * rendering still depends on bytes not yet seen. Cutting there cannot change how the bytes decode:
     * the held sequence starts with a non-continuation byte, and Java's decoder always starts afresh at
     * one (a malformed sequence before it is replaced without swallowing it), and an unfinished
     * sequence before the cut is replaced the same way whether it is cut short or broken by that byte.
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
