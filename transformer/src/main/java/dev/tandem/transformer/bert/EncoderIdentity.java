package dev.tandem.transformer.bert;

import java.util.HexFormat;
import java.util.Objects;

/**
 * Which encoder made a vector: a name for messages ({@link Encoders#MINILM}, or an encoder directory's name) and the
 * SHA-256 of the files that fix its vectors (see {@link Encoders}), as 64 lowercase hex digits. Vectors of two encoders
 * are comparable only when their digests are equal; the name plays no part in that ({@link #sameEncoder}).
 */
public record EncoderIdentity(String name, String sha256) {
    public EncoderIdentity {
        Objects.requireNonNull(name, "name");
        if (sha256 == null || sha256.length() != 64 || !sha256.chars().allMatch(c -> (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            throw new IllegalArgumentException("a SHA-256 is 64 lowercase hex digits, not " + sha256);
        }
    }

    /** An identity with the digest {@code sha256} (32 bytes). */
    public static EncoderIdentity of(String name, byte[] sha256) {
        if (sha256.length != 32) {
            throw new IllegalArgumentException("a SHA-256 is 32 bytes, not " + sha256.length);
        }
        return new EncoderIdentity(name, HexFormat.of().formatHex(sha256));
    }

    /** Whether vectors of {@code other} are comparable with this encoder's: the same digest. */
    public boolean sameEncoder(EncoderIdentity other) {
        return sha256.equals(other.sha256);
    }

    /** For messages: {@code all-MiniLM-L6-v2 (sha256 1a2b3c4d…)}. */
    public String describe() {
        return name + " (sha256 " + sha256.substring(0, 8) + "…)";
    }
}
