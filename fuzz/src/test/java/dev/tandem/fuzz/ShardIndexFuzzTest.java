package dev.tandem.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.tandem.transformer.weights.WeightStore;

import java.nio.file.Path;

/**
 * A sharded checkpoint's {@code model.safetensors.index.json} (its {@code weight_map} of tensor names to
 * shard files), beside two real shards cut from the repository's checkpoints; opened mapped, and every
 * tensor it lists read. Seeds: an index of those shards (see {@code fuzz/README.md}).
 */
class ShardIndexFuzzTest {
    static final String SHARD_1 = "model-00001-of-00002.safetensors";
    static final String SHARD_2 = "model-00002-of-00002.safetensors";
    private static final Path DIR = Contract.scratchDirectory();

    static {
        try {
            for (String[] shard : new String[][] {{"bard-s-f32", SHARD_1}, {"qwen3-f16", SHARD_2}}) {
                byte[] bytes = ShardIndexFuzzTest.class.getResourceAsStream(
                        "SafetensorsFuzzTestInputs/safetensors/" + shard[0] + ".safetensors").readAllBytes();
                Contract.write(DIR, shard[1], bytes);
            }
        } catch (Exception e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @FuzzTest
    void shardIndex(byte[] json) throws Exception {
        Contract.write(DIR, WeightStore.INDEX_FILE, json);
        Contract.holds(() -> {
            try (WeightStore store = WeightStore.open(DIR, false)) {
                for (String name : store.names()) {
                    store.get(name);
                }
            }
        });
    }

    /** The directory holding the two shards (and the index being fuzzed), for {@link SeedsAreValidTest}. */
    static Path directory() {
        return DIR;
    }
}
