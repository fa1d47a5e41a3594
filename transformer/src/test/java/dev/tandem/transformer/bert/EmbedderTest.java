package dev.tandem.transformer.bert;

import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.config.BertConfig;
import dev.tandem.transformer.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** {@link Embedder}: concurrent callers batched into shared passes get the vectors they get alone, bit for bit. */
class EmbedderTest {
    static final BertConfig CONFIG = new BertConfig(2048, 32, 2, 4, 48, 40, 2, 1e-12);

    private static BertEncoder encoder() {
        Map<String, float[]> w = BertFixtures.randomWeights(CONFIG, 21);
        return new BertEncoder(CONFIG, Tokenizers.load(TestModels.model("bard-s").resolve("tokenizer.json")),
                name -> w.containsKey(name) ? Tensor.ofFloats(w.get(name), BertFixtures.shapeOf(CONFIG, name)) : null,
                new CpuBackend(2), true, "the test's weights", 1024, null);
    }

    @Test
    void concurrentCallersShareAPassAndGetTheirLoneVectors() throws Exception {
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < 48; i++) {
            texts.add("line " + i + ": " + "to be or not to be ".repeat(i % 4));
        }
        try (Embedder batching = Embedder.batching(encoder(), 8, BertEncoder.Pooling.MEAN, true, false)) {
            BertEncoder enc = batching.encoder();
            Embedder latency = Embedder.latency(enc, BertEncoder.Pooling.MEAN, true, false);
            List<float[]> alone = new ArrayList<>();
            for (String t : texts) {
                alone.add(latency.embed(t));
            }
            ExecutorService pool = Executors.newFixedThreadPool(8);
            try {
                List<Future<float[]>> futures = new ArrayList<>();
                for (String t : texts) {
                    futures.add(pool.submit(() -> batching.embed(t)));
                }
                for (int i = 0; i < texts.size(); i++) {
                    assertArrayEquals(alone.get(i), futures.get(i).get(), "text " + i);
                }
            } finally {
                pool.shutdown();
            }
            List<float[]> all = batching.embedAll(texts);
            for (int i = 0; i < texts.size(); i++) {
                assertArrayEquals(alone.get(i), all.get(i), "text " + i + " in one call");
            }
            assertEquals(32, batching.dimension());
        }
    }

    @Test
    void aTooLongTextIsRefusedUnlessTruncated() {
        try (Embedder strict = Embedder.batching(encoder(), 4, BertEncoder.Pooling.MEAN, true, false)) {
            String longText = "word ".repeat(200);
            TandemException e = assertThrows(TandemException.class, () -> strict.embed(longText));
            assertEquals("the input has", e.getMessage().substring(0, 13));
            Embedder truncating = Embedder.latency(strict.encoder(), BertEncoder.Pooling.MEAN, true, true);
            assertEquals(32, truncating.embed(longText).length);
        }
    }
}
