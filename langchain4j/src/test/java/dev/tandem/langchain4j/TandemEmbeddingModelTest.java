package dev.tandem.langchain4j;

import dev.langchain4j.data.embedding.Embedding;
import dev.langchain4j.data.segment.TextSegment;
import dev.langchain4j.model.output.Response;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.bert.Encoders;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TandemEmbeddingModelTest {

    private static final List<String> TEXTS = List.of("The cat sat on the mat.", "Napoleon crossed the Niemen in June 1812.",
            "Ein Satz auf Deutsch.", "x");

    @Test
    void vectorsAreTheEmbeddersBitForBit() {
        try (TandemEmbeddingModel model = TandemEmbeddingModel.builder().threads(2).build();
             Embedder embedder = Embedder.batching(Encoders.open(null, null, 2))) {
            assertEquals(384, model.dimension());
            assertEquals(Encoders.MINILM, model.modelName());
            Response<List<Embedding>> response = model.embedAll(TEXTS.stream().map(TextSegment::from).toList());
            List<float[]> expected = embedder.embedAll(TEXTS);
            assertEquals(TEXTS.size(), response.content().size());
            for (int i = 0; i < TEXTS.size(); i++) {
                assertArrayEquals(expected.get(i), response.content().get(i).vector(), "text " + i);
            }
            assertTrue(response.tokenUsage().inputTokenCount() > TEXTS.size());
            // langchain4j's single-text entry points go through embedAll.
            assertArrayEquals(expected.getFirst(), model.embed(TEXTS.getFirst()).content().vector());
        }
    }

    @Test
    void aSharedEmbedderIsNotClosed() {
        try (Embedder embedder = Embedder.batching(Encoders.open(null, null, 2))) {
            try (TandemEmbeddingModel model = TandemEmbeddingModel.builder().embedder(embedder).build()) {
                assertEquals(384, model.dimension());
            }
            assertEquals(384, embedder.embed("still open").length);
        }
    }
}
