package dev.tandem.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.tandem.transformer.tokenizer.GgufTokenizer;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.weights.GgufCheckpoint;
import dev.tandem.transformer.weights.GgufFile;

import java.nio.file.Path;

/**
 * A {@code .gguf} file as a user hands it to us: the header, the typed metadata (nested arrays included), the tensor
 * infos and the data. Opened mapped and resident (the copy, f16 widening, the NaN check) with every tensor read, then
 * as a model checkpoint (the configuration from the metadata, every tensor under its Hugging Face name, Llama's q/k
 * rows put back in order) and its tokenizer built and run. Seeds: two tiny llama files with one tensor of every ggml
 * type Tandem reads, one with a gpt2 tokenizer, one with a SentencePiece-style one ({@code fuzz/make_seeds.py}).
 */
class GgufFuzzTest {
    private static final Path DIR = Contract.scratchDirectory();

    @FuzzTest
    void gguf(byte[] bytes) throws Exception {
        Path file = Contract.write(DIR, "model.gguf", bytes);
        for (boolean resident : new boolean[] {false, true}) {
            Contract.holds(() -> {
                try (GgufFile f = GgufFile.open(file, resident)) {
                    for (String name : f.names()) {
                        f.info(name);
                        f.tensor(name);
                    }
                }
            });
        }
        Contract.holds(() -> {
            try (GgufCheckpoint c = GgufCheckpoint.open(file, false)) {
                for (String name : c.names()) {
                    c.tensor(name);
                }
                Tokenizer t = GgufTokenizer.fromMetadata(c.metadata(), "model.gguf");
                t.decode(t.encode("ab a\nb <|end|> naïve"));
            }
        });
    }
}
