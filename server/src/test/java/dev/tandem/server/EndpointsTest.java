package dev.tandem.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.models.embeddings.CreateEmbeddingResponse;
import com.openai.models.embeddings.EmbeddingCreateParams;
import com.openai.models.models.Model;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.bert.Encoders;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The other endpoints: /v1/embeddings through the OpenAI SDK (vectors exactly the encoder's), /v1/models, /health,
 * /metrics (requests, tokens, queue, KV blocks, acceptance per method), and the chunks of a speculative stream
 * (tokens accepted together go out together).
 */
class EndpointsTest {
    static LanguageModel target;
    static LanguageModel draft;
    static BertEncoder encoder;
    static Embedder embedder;
    static TandemServer server;
    static OpenAIClient client;

    @BeforeAll
    static void start() {
        ModelLoader.Options o = ModelLoader.Options.defaults().withThreads(2).withKvMemory(32L << 20);
        target = ModelLoader.load(TestModels.model("bard-s"), o);
        draft = ModelLoader.load(TestModels.model("bard-s"), o.withBackend(target.backend()));
        encoder = Encoders.open(null, null, 2);
        embedder = Embedder.batching(encoder);
        server = TandemServer.start(ServedModels.of(target).withDraft(draft).withEmbedder(Encoders.MINILM, embedder),
                ServerOptions.defaults().withPort(0), new PrintStream(System.err, true));
        client = OpenAIOkHttpClient.builder().baseUrl(server.url() + "/v1").apiKey("unused").maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        if (client != null) {
            client.close();
        }
        if (server != null) {
            server.close();
        }
        if (embedder != null) {
            embedder.close();
        }
        if (encoder != null) {
            encoder.close();
        }
        if (draft != null) {
            draft.close();
        }
        if (target != null) {
            target.close();
        }
    }

    @Test
    void embeddingsAreTheEncodersVectorsInBothEncodings() throws Exception {
        List<String> texts = List.of("O Romeo, Romeo, wherefore art thou Romeo?", "A plague on both your houses.");
        List<float[]> want = embedder.embedAll(texts);
        // The SDK asks for base64 unless told otherwise, and decodes it.
        CreateEmbeddingResponse r = client.embeddings().create(EmbeddingCreateParams.builder().model(Encoders.MINILM)
                .inputOfArrayOfStrings(texts).build());
        assertEquals(2, r.data().size());
        for (int i = 0; i < 2; i++) {
            List<Float> got = r.data().get(i).embedding();
            float[] g = new float[got.size()];
            for (int j = 0; j < g.length; j++) {
                g[j] = got.get(j);
            }
            assertArrayEquals(want.get(i), g);
        }
        ServerHarness.Reply floats = ServerHarness.post(server.url(), "/v1/embeddings",
                "{\"model\": \"all-MiniLM-L6-v2\", \"input\": \"A plague on both your houses.\", \"encoding_format\": \"float\"}");
        assertEquals(200, floats.status(), floats.raw().body());
        JsonNode v = floats.body().get("data").get(0).get("embedding");
        assertEquals(384, v.size());
        for (int j = 0; j < v.size(); j++) {
            assertEquals(want.get(1)[j], v.get(j).floatValue());
        }
        BadRequestsTest.refused(ServerHarness.post(server.url(), "/v1/embeddings", "{\"model\": \"bard-s\", \"input\": \"x\"}"),
                400, "model", "model_not_found");
        BadRequestsTest.refused(ServerHarness.post(server.url(), "/v1/embeddings", "{\"input\": []}"), 400, "input", null);
    }

    @Test
    void modelsListsWhatIsServed() {
        List<String> ids = new ArrayList<>();
        for (Model m : client.models().list().data()) {
            ids.add(m.id());
        }
        assertEquals(List.of("bard-s", Encoders.MINILM), ids);
    }

    @Test
    void healthAndMetrics() throws Exception {
        ServerHarness.Reply h = ServerHarness.get(server.url(), "/health");
        assertEquals(200, h.status());
        assertEquals("ok", h.body().get("status").asText());
        ServerHarness.post(server.url(), "/v1/completions", "{\"prompt\": \"ROMEO:\", \"max_tokens\": 12, \"temperature\": 0, "
                + "\"method\": \"speculative\"}");
        ServerHarness.post(server.url(), "/v1/completions", "{\"prompt\": \"ROMEO:\", \"max_tokens\": 0}");
        String m = ServerHarness.get(server.url(), "/metrics").raw().body();
        for (String line : List.of("tandem_requests_total{endpoint=\"completions\",outcome=\"invalid\"}",
                "tandem_requests_total{endpoint=\"completions\",outcome=\"ok\"}", "tandem_generated_tokens_total ",
                "tandem_prompt_tokens_total ", "tandem_queue_length 0", "tandem_requests_running 0",
                "tandem_kv_blocks_in_use{model=\"bard-s\"} 0", "tandem_kv_blocks_total{model=\"bard-s\"} " + target.kvCache().numBlocks(),
                "tandem_draft_tokens_total{method=\"speculative\"}", "tandem_acceptance_rate{method=\"speculative\"} 1.000000")) {
            assertTrue(m.contains(line), line + " missing from\n" + m);
        }
    }

    @Test
    void aSpeculativeStreamSendsTheTokensOfARoundTogether() throws Exception {
        // The draft is the target itself, so every draft token is accepted: rounds of five tokens.
        try (ServerHarness.Events ev = ServerHarness.stream(server.url(), "/v1/completions", "{\"prompt\": \"ROMEO:\", "
                + "\"max_tokens\": 40, \"temperature\": 0, \"ignore_eos\": true, \"stream\": true, \"logprobs\": 0, "
                + "\"method\": \"speculative\", \"draft_length\": 4}")) {
            int tokens = 0;
            int chunks = 0;
            int largest = 0;
            for (String e : ev.rest()) {
                if (e.equals("[DONE]")) {
                    break;
                }
                JsonNode lp = ServerHarness.JSON.readTree(e).get("choices").get(0).get("logprobs");
                if (lp != null && !lp.isNull()) {
                    int n = lp.get("tokens").size();
                    tokens += n;
                    chunks++;
                    largest = Math.max(largest, n);
                }
            }
            assertEquals(40, tokens);
            assertTrue(largest > 1 && chunks < tokens, chunks + " chunks for " + tokens + " tokens");
        }
    }
}
