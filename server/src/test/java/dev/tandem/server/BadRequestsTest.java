package dev.tandem.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.PrintStream;
import java.time.Duration;

import static dev.tandem.server.ServerHarness.post;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every refusal of tandem serve: its status and an OpenAI error object ({@code error.message} one sentence naming
 * the cause, {@code type}, {@code param}, {@code code}), never a 500 or a stack trace.
 */
class BadRequestsTest {
    static LanguageModel target;
    static GatedModel gated;
    static TandemServer server;
    static String url;

    @BeforeAll
    static void start() {
        target = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withThreads(2).withKvMemory(32L << 20));
        gated = new GatedModel(target);
        server = TandemServer.start(ServedModels.of(gated), ServerOptions.defaults().withPort(0).withMaxTokensCap(256)
                .withMaxBodyBytes(4096).withMaxRunning(1).withMaxQueued(0), new PrintStream(System.err, true));
        url = server.url();
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
        if (target != null) {
            target.close();
        }
    }

    /** Checks status and error object; returns the message. */
    static String refused(ServerHarness.Reply r, int status, String param, String code) {
        assertEquals(status, r.status(), () -> "status of " + r.raw().body());
        JsonNode err = r.body().get("error");
        assertNotNull(err, r.raw().body());
        String message = err.get("message").asText();
        assertFalse(message.isBlank());
        assertTrue(message.endsWith(".") && !message.contains("\n") && !message.contains("Exception") && !message.contains("\tat "),
                "not one plain sentence: " + message);
        assertTrue(err.has("type") && err.has("param") && err.has("code"), r.raw().body());
        assertEquals(param, err.get("param").isNull() ? null : err.get("param").asText(), message);
        assertEquals(code, err.get("code").isNull() ? null : err.get("code").asText(), message);
        assertTrue(r.raw().headers().firstValue("content-type").orElse("").startsWith("application/json"));
        return message;
    }

    @Test
    void malformedJson() throws Exception {
        String m = refused(post(url, "/v1/completions", "{\"prompt\": \"ROMEO:\", "), 400, null, null);
        assertTrue(m.contains("not valid JSON"), m);
        refused(post(url, "/v1/completions", "[1, 2]"), 400, null, null);
        refused(post(url, "/v1/completions", ""), 400, null, null);
        refused(post(url, "/v1/chat/completions", "nonsense"), 400, null, null);
    }

    @Test
    void unknownModel() throws Exception {
        String m = refused(post(url, "/v1/completions", "{\"model\": \"gpt-4\", \"prompt\": \"x\"}"), 400, "model", "model_not_found");
        assertTrue(m.contains("gpt-4") && m.contains("bard-s"), m);
        refused(post(url, "/v1/completions", "{\"model\": 3, \"prompt\": \"x\"}"), 400, "model", null);
    }

    @Test
    void promptOverTheContext() throws Exception {
        String ids = "5,".repeat(1100) + "5"; // 1101 token ids, more than bard-s's 1024 positions
        String m = refused(post(url, "/v1/completions", "{\"prompt\": [" + ids + "], \"max_tokens\": 4}"), 400, "prompt",
                "context_length_exceeded");
        assertTrue(m.contains("1024"), m);
    }

    @Test
    void invalidParameterValues() throws Exception {
        String[][] cases = {
                {"\"temperature\": 3", "temperature"}, {"\"temperature\": -1", "temperature"}, {"\"temperature\": \"hot\"", "temperature"},
                {"\"top_p\": 0", "top_p"}, {"\"top_p\": 1.5", "top_p"}, {"\"max_tokens\": 0", "max_tokens"},
                {"\"max_tokens\": 1.5", "max_tokens"}, {"\"n\": 0", "n"}, {"\"n\": 99", "n"}, {"\"stop\": 5", "stop"},
                {"\"stop\": [\"\"]", "stop"}, {"\"logprobs\": 50", "logprobs"}, {"\"seed\": \"x\"", "seed"},
                {"\"stream\": \"yes\"", "stream"}, {"\"top_k\": -1", "top_k"}, {"\"min_p\": 1", "min_p"},
                {"\"repetition_penalty\": 0", "repetition_penalty"}, {"\"presence_penalty\": 0.5", "presence_penalty"},
                {"\"frequency_penalty\": 5", "frequency_penalty"}, {"\"logit_bias\": {\"5\": 10}", "logit_bias"},
                {"\"echo\": true", "echo"}, {"\"best_of\": 2", "best_of"}, {"\"suffix\": \"x\"", "suffix"},
                {"\"method\": \"telepathy\"", "method"}, {"\"method\": \"speculative\"", "method"}, {"\"draft_length\": 0", "draft_length"},
                {"\"tools\": [{\"type\": \"function\"}]", "tools"}, {"\"response_format\": {\"type\": \"json_object\"}", "response_format"},
                {"\"stream_options\": {\"include_usage\": true}", "stream_options"},
        };
        for (String[] c : cases) {
            refused(post(url, "/v1/completions", "{\"prompt\": \"ROMEO:\", " + c[0] + "}"), 400, c[1], null);
        }
        refused(post(url, "/v1/completions", "{\"max_tokens\": 4}"), 400, "prompt", null);
        refused(post(url, "/v1/completions", "{\"prompt\": [\"a\", 5]}"), 400, "prompt", null);
        String m = refused(post(url, "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 257}"), 400, "max_tokens", null);
        assertTrue(m.contains("256"), m);
        refused(post(url, "/v1/completions", "{\"prompt\": [999999]}"), 400, "prompt", null);
    }

    @Test
    void chatWithoutATemplateAndBadMessages() throws Exception {
        String m = refused(post(url, "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"),
                400, "messages", null);
        assertTrue(m.contains("no chat template"), m);
        refused(post(url, "/v1/chat/completions", "{\"messages\": []}"), 400, "messages", null);
        refused(post(url, "/v1/chat/completions", "{\"messages\": [{\"content\": \"hi\"}]}"), 400, "messages[0].role", null);
        refused(post(url, "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}"),
                400, "messages[0].content", null);
        refused(post(url, "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"top_logprobs\": 2}"),
                400, "top_logprobs", null);
    }

    @Test
    void embeddingsWithoutAnEncoder() throws Exception {
        refused(post(url, "/v1/embeddings", "{\"input\": \"hello\"}"), 400, "model", "model_not_found");
    }

    @Test
    void bodyOverTheLimit() throws Exception {
        String m = refused(post(url, "/v1/completions", "{\"prompt\": \"" + "x".repeat(5000) + "\"}"), 413, null, "request_too_large");
        assertTrue(m.contains("4096"), m);
    }

    @Test
    void unknownPath() throws Exception {
        refused(post(url, "/v1/edits", "{}"), 404, null, "not_found");
    }

    @Test
    void aFullQueueIsAnswered429WithRetryAfter() throws Exception {
        // One running slot, no queue: a request held at the model's gate keeps the slot, the next is turned away at once.
        gated.shut();
        java.util.concurrent.CompletableFuture<java.net.http.HttpResponse<String>> held = ServerHarness.HTTP.sendAsync(
                java.net.http.HttpRequest.newBuilder(java.net.URI.create(url + "/v1/completions"))
                        .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{\"prompt\": \"ROMEO:\", \"max_tokens\": 8}")).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
        try {
            gated.awaitWaiting(); // admitted and decoding
            ServerHarness.Reply r = post(url, "/v1/completions", "{\"prompt\": \"ROMEO:\", \"max_tokens\": 4}");
            refused(r, 429, null, "queue_full");
            assertEquals("1", r.raw().headers().firstValue("retry-after").orElse(null));
        } finally {
            gated.release();
        }
        assertEquals(200, held.get().statusCode(), held.get().body());
        // the slot comes back once the held stream is gone
        ServerHarness.await(() -> target.kvCache().usedBlocks() == 0, Duration.ofSeconds(30), "the held request's blocks are free");
        ServerHarness.await(() -> {
            try {
                return post(url, "/v1/completions", "{\"prompt\": \"ROMEO:\", \"max_tokens\": 2}").status() == 200;
            } catch (Exception e) {
                return false;
            }
        }, Duration.ofSeconds(30), "a request is admitted again");
    }

    @Test
    void anApiKeyIsRequiredWhenSet() throws Exception {
        try (TandemServer keyed = TandemServer.start(ServedModels.of(target), ServerOptions.defaults().withPort(0).withApiKey("s3cret"),
                new PrintStream(System.err, true))) {
            String body = "{\"prompt\": \"ROMEO:\", \"max_tokens\": 2}";
            refused(post(keyed.url(), "/v1/completions", body), 401, null, "invalid_api_key");
            refused(post(keyed.url(), "/v1/completions", body, "Authorization", "Bearer wrong"), 401, null, "invalid_api_key");
            assertEquals(200, post(keyed.url(), "/v1/completions", body, "Authorization", "Bearer s3cret").status());
            assertEquals(200, ServerHarness.get(keyed.url(), "/health").status());
        }
    }

    @Test
    void aTakenPortIsRefusedInOneSentence() {
        dev.tandem.runtime.TandemException e = org.junit.jupiter.api.Assertions.assertThrows(dev.tandem.runtime.TandemException.class,
                () -> TandemServer.start(ServedModels.of(target), ServerOptions.defaults().withPort(server.port()),
                        new PrintStream(System.err, true)));
        assertTrue(e.getMessage().contains("cannot listen on 127.0.0.1:" + server.port()) && e.getMessage().contains("port is taken"),
                e.getMessage());
        assertEquals(200, assertDoesNotThrow(() -> ServerHarness.get(url, "/health")).status()); // the first server is untouched
    }
}
