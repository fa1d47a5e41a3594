package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.transformer.TestModels;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

/** The bundled bard-s {@code tokenizer.json}, and edited copies of it for tokenizer tests. */
final class BardTokenizerFiles {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path BARD_S = TestModels.model("bard-s").resolve("tokenizer.json");

    private BardTokenizerFiles() {
    }

    /** Writes bard-s's tokenizer.json, changed by {@code change}, to a new file in {@code dir}. */
    static Path modifiedBardS(Path dir, Consumer<ObjectNode> change) throws IOException {
        ObjectNode root = (ObjectNode) JSON.readTree(BARD_S.toFile());
        change.accept(root);
        Path file = Files.createTempFile(dir, "tokenizer", ".json");
        JSON.writeValue(file.toFile(), root);
        return file;
    }
}
