package dev.tandem.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.tandem.transformer.weights.SafetensorsFile;

import java.nio.file.Path;

/**
 * A {@code model.safetensors} as a user hands it to us: the header length, the JSON header (dtypes,
 * shapes, data offsets, metadata) and the data. Opened mapped and resident (the copy, f16 widening
 * and the NaN check), and every tensor it lists read back. Seeds: small files cut from the
 * repository's checkpoints (f32, bf16, f16; see {@code fuzz/README.md}).
 */
class SafetensorsFuzzTest {
    private static final Path DIR = Contract.scratchDirectory();

    @FuzzTest
    void safetensors(byte[] bytes) throws Exception {
        Path file = Contract.write(DIR, "model.safetensors", bytes);
        Contract.holds(() -> {
            try (SafetensorsFile mapped = SafetensorsFile.open(file)) {
                readEvery(mapped);
            }
        });
        Contract.holds(() -> {
            try (SafetensorsFile resident = SafetensorsFile.open(file, true)) {
                readEvery(resident);
            }
        });
    }

    private static void readEvery(SafetensorsFile f) {
        f.metadata();
        for (String name : f.names()) {
            f.info(name);
            f.dtypeName(name);
            f.tensor(name);
        }
    }
}
