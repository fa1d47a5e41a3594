package dev.tandem.transformer.synth;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import dev.tandem.runtime.TandemException;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * A GPT-2-style byte-level BPE {@code tokenizer.json} for synthetic checkpoints, with a vocabulary of
 * exactly {@code vocabSize} tokens:
 * <ul>
 *   <li>ids 0–255: the 256 byte tokens, id {@code b} spelling byte {@code b} in GPT-2's byte-to-unicode
 *       alphabet (so id 32, the space, is {@code "Ġ"});</li>
 *   <li>ids 256 … {@code vocabSize − 2}: {@code "Ġ"} followed by lowercase ASCII letters, breadth first
 *       ({@code "Ġa"} … {@code "Ġz"}, {@code "Ġaa"} … {@code "Ġzz"}, {@code "Ġaaa"} …), each made by the
 *       merge (the token without its last letter, the last letter), merges ranked in creation order;</li>
 *   <li>id {@code vocabSize − 1}: {@code <|endoftext|>}, a special added token (BOS and EOS).</li>
 * </ul>
 * So random ids decode to pseudo-words, and {@code " hello"} encodes greedily into the longest of these
 * the vocabulary has (e.g. {@code "Ġhe" "l" "l" "o"} with 2048 tokens). Pre-tokenizer, decoder and
 * post-processor are ByteLevel, as in GPT-2's own file.
 */
public final class SyntheticTokenizer {

    /** The smallest vocabulary: 256 byte tokens, one merged token and {@code <|endoftext|>}. */
    public static final int MIN_VOCAB_SIZE = 258;
    /** The largest vocabulary this generator writes (the file grows by about 40 bytes a token). */
    public static final int MAX_VOCAB_SIZE = 1 << 22;
    public static final String END_OF_TEXT = "<|endoftext|>";

    private static final String SPACE = "\u0120"; // "Ġ", byte 0x20 in GPT-2's alphabet
    private static final JsonFactory JSON = new JsonFactory();

    private SyntheticTokenizer() {
    }

    /** The id of {@code <|endoftext|>}: {@code vocabSize − 1}. */
    public static int endOfTextId(int vocabSize) {
        return vocabSize - 1;
    }

    /**
     * Checks that a vocabulary of this size can be generated.
     *
     * @throws TandemException when {@code vocabSize} is below {@link #MIN_VOCAB_SIZE} or above
     *                         {@link #MAX_VOCAB_SIZE}
     */
    public static void checkVocabSize(int vocabSize, String where) {
        if (vocabSize < MIN_VOCAB_SIZE) {
            throw new TandemException(where + ": vocab_size is " + vocabSize + ", but a synthetic checkpoint needs at least "
                    + MIN_VOCAB_SIZE + " (256 byte tokens, one merged token and " + END_OF_TEXT + ").");
        }
        if (vocabSize > MAX_VOCAB_SIZE) {
            throw new TandemException(where + ": vocab_size is " + vocabSize + ", more than the " + MAX_VOCAB_SIZE
                    + " tokens synth's tokenizer generator writes.");
        }
    }

    /** The {@code tokenizer.json} bytes (UTF-8) for a vocabulary of {@code vocabSize} tokens. */
    public static byte[] json(int vocabSize) {
        checkVocabSize(vocabSize, "tokenizer");
        String[] bytes = byteAlphabet();
        int words = vocabSize - 257;
        ByteArrayOutputStream out = new ByteArrayOutputStream(64 + vocabSize * 40);
        try (JsonGenerator g = JSON.createGenerator(out, JsonEncoding.UTF8)) {
            g.writeStartObject();
            g.writeStringField("version", "1.0");
            g.writeNullField("truncation");
            g.writeNullField("padding");
            g.writeArrayFieldStart("added_tokens");
            g.writeStartObject();
            g.writeNumberField("id", endOfTextId(vocabSize));
            g.writeStringField("content", END_OF_TEXT);
            g.writeBooleanField("single_word", false);
            g.writeBooleanField("lstrip", false);
            g.writeBooleanField("rstrip", false);
            g.writeBooleanField("normalized", true);
            g.writeBooleanField("special", true);
            g.writeEndObject();
            g.writeEndArray();
            g.writeNullField("normalizer");
            byteLevel(g, "pre_tokenizer", false, true);
            byteLevel(g, "post_processor", true, false);
            byteLevel(g, "decoder", true, true);

            g.writeObjectFieldStart("model");
            g.writeStringField("type", "BPE");
            g.writeNullField("dropout");
            g.writeNullField("unk_token");
            g.writeNullField("continuing_subword_prefix");
            g.writeNullField("end_of_word_suffix");
            g.writeBooleanField("fuse_unk", false);
            g.writeBooleanField("byte_fallback", false);
            g.writeBooleanField("ignore_merges", false);
            g.writeObjectFieldStart("vocab");
            for (int b = 0; b < 256; b++) {
                g.writeNumberField(bytes[b], b);
            }
            Words w = new Words();
            for (int i = 0; i < words; i++) {
                g.writeNumberField(SPACE + w.next(), 256 + i);
            }
            g.writeNumberField(END_OF_TEXT, endOfTextId(vocabSize));
            g.writeEndObject();
            g.writeArrayFieldStart("merges");
            w = new Words();
            for (int i = 0; i < words; i++) {
                String word = w.next();
                g.writeString(SPACE + word.substring(0, word.length() - 1) + " " + word.charAt(word.length() - 1));
            }
            g.writeEndArray();
            g.writeEndObject();
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /**
     * The {@code index}-th pseudo-word (0-based) in breadth-first order: a … z, aa … zz, aaa …; token
     * {@code 256 + index} is {@code "Ġ" + word(index)}.
     */
    public static String word(long index) {
        if (index < 0) {
            throw new IllegalArgumentException("negative word index " + index);
        }
        int len = 1;
        long count = 26;
        while (index >= count) {
            index -= count;
            len++;
            count *= 26;
        }
        char[] c = new char[len];
        for (int i = len - 1; i >= 0; i--) {
            c[i] = (char) ('a' + index % 26);
            index /= 26;
        }
        return new String(c);
    }

    /** GPT-2's {@code bytes_to_unicode}: printable Latin-1 bytes stand for themselves, the rest map to U+0100 on. */
    static String[] byteAlphabet() {
        String[] map = new String[256];
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = String.valueOf((char) (printable ? b : next++));
        }
        return map;
    }

    private static void byteLevel(JsonGenerator g, String field, boolean addPrefixSpace, boolean trimOffsets)
            throws IOException {
        g.writeObjectFieldStart(field);
        g.writeStringField("type", "ByteLevel");
        g.writeBooleanField("add_prefix_space", addPrefixSpace);
        g.writeBooleanField("trim_offsets", trimOffsets);
        g.writeBooleanField("use_regex", true);
        g.writeEndObject();
    }

    /** Successive pseudo-words, breadth first, as an odometer over a … z. */
    private static final class Words {
        private char[] letters = new char[0];

        String next() {
            int i = letters.length - 1;
            while (i >= 0 && letters[i] == 'z') {
                letters[i] = 'a';
                i--;
            }
            if (i < 0) {
                letters = new char[letters.length + 1];
                java.util.Arrays.fill(letters, 'a');
            } else {
                letters[i]++;
            }
            return new String(letters);
        }
    }
}
