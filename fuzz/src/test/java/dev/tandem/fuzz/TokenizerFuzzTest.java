package dev.tandem.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.tandem.transformer.tokenizer.StreamingDecoder;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;

import java.nio.file.Path;

/**
 * A {@code tokenizer.json} (plain or gzip): loaded, and when it loads, used — text with ASCII,
 * accents, CJK, emoji, control characters and a special token encoded, and the ids decoded back
 * whole and streamed, and each id's bytes and content asked for (only ids the tokenizer gave: one
 * that names no token is the caller's error, an {@link IllegalArgumentException}) — since a file can describe a tokenizer that builds but breaks on use (a merge
 * of unknown tokens, a pattern that never matches). Seeds: the repository's tokenizers and two cut
 * down from them (see {@code fuzz/README.md}).
 */
class TokenizerFuzzTest {
    private static final Path DIR = Contract.scratchDirectory();
    private static final String TEXT = "Hello, world!  It's 2026 — naïve café, 東京, 🙂\t\n<|endoftext|></s><s>";

    @FuzzTest
    void tokenizer(byte[] json) throws Exception {
        Path file = Contract.write(DIR, "tokenizer.json", json);
        Contract.holds(() -> {
            Tokenizer t = Tokenizers.load(file);
            for (boolean special : new boolean[] {true, false}) {
                int[] ids = t.encode(TEXT, special);
                t.decode(ids, false);
                t.decode(t.withSpecialTokens(ids), true);
                StreamingDecoder stream = t.streamingDecoder();
                for (int id : ids) {
                    stream.push(id);
                    t.tokenBytes(id);
                    t.tokenContent(id);
                }
                stream.flush();
            }
        });
    }
}
