package dev.tandem.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.NamedMethods;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.tokenizer.Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Many streaming clients at once, with every method and greedy and sampled requests mixed: each stream equals
 * that request decoded alone; a client that goes away mid-stream and a server that shuts down leave no KV block
 * behind.
 */
class ConcurrentStreamsTest {
    static LanguageModel target;
    static GatedModel gated;
    static LanguageModel draft;
    static TandemServer server;

    @BeforeAll
    static void start() {
        ModelLoader.Options o = ModelLoader.Options.defaults().withThreads(2).withKvMemory(96L << 20);
        target = ModelLoader.load(TestModels.model("bard-s"), o);
        draft = ModelLoader.load(TestModels.model("bard-s"), o.withBackend(target.backend()));
        gated = new GatedModel(target);
        server = TandemServer.start(ServedModels.of(gated).withDraft(draft), ServerOptions.defaults().withPort(0)
                .withMaxRunning(32).withMaxQueued(64), new PrintStream(System.err, true));
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
        if (draft != null) {
            draft.close();
        }
        if (target != null) {
            target.close();
        }
    }

    record Client(String prompt, String method, float temperature, long seed) {
        String body(int maxTokens) {
            return "{\"model\": \"bard-s\", \"prompt\": " + ServerHarness.JSON.valueToTree(prompt) + ", \"max_tokens\": " + maxTokens
                    + ", \"temperature\": " + temperature + ", \"seed\": " + seed + ", \"method\": \"" + method + "\", \"stream\": true}";
        }

        GenerationResult solo(int maxTokens) {
            Tokenizer tok = target.tokenizer();
            GenerationRequest r = GenerationRequest.ofIds(tok.withSpecialTokens(tok.encode(prompt))).withMaxTokens(maxTokens)
                    .withSampling(new SamplingParams(temperature, 0, 1f, 0f, 1f, seed)).withStreamId(0);
            return NamedMethods.create(method, target, draft, null).generate(r);
        }
    }

    @Test
    void sixtyFourStreamsWithMixedMethodsEachEqualTheirSoloResult() throws Exception {
        List<String> prompts = List.of("ROMEO:", "JULIET:\nO Romeo", "First Citizen:", "KING HENRY VI:", "MENENIUS:\nWhat work's",
                "To be, or not", "HAMLET:", "");
        List<Client> clients = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            String method = NamedMethods.NAMES.get(i % NamedMethods.NAMES.size());
            boolean sampled = i % 4 == 3;
            clients.add(new Client(prompts.get(i % prompts.size()), method, sampled ? 0.8f : 0f, 1000 + i));
        }
        int maxTokens = 20;
        List<String> want = new ArrayList<>();
        for (Client c : clients) {
            want.add(c.solo(maxTokens).text());
        }
        assertEquals(0, target.kvCache().usedBlocks());
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<String>> got = new ArrayList<>();
            for (Client c : clients) {
                got.add(pool.submit(() -> {
                    try (ServerHarness.Events ev = ServerHarness.stream(server.url(), "/v1/completions", c.body(maxTokens))) {
                        assertEquals(200, ev.status);
                        List<String> events = ev.rest();
                        assertEquals("[DONE]", events.getLast());
                        return ServerHarness.streamedText(events);
                    }
                }));
            }
            for (int i = 0; i < clients.size(); i++) {
                assertEquals(want.get(i), got.get(i).get(), clients.get(i).toString());
            }
        }
        ServerHarness.await(() -> target.kvCache().usedBlocks() == 0 && draft.kvCache().usedBlocks() == 0,
                Duration.ofSeconds(10), "every block is free");
        assertEquals(target.kvCache().numBlocks(), target.kvCache().freeBlocks());
    }

    @Test
    void aClientThatGoesAwayMidStreamLeavesNoBlockBehind() throws Exception {
        long cancelledBefore = server.requestCount("completions", "cancelled");
        for (String method : List.of("plain", "speculative")) {
            gated.shut();
            gated.allow(8); // the prompt and a few rounds, then the request waits at the gate, far from its 900 tokens
            try (ServerHarness.RawStream ev = new ServerHarness.RawStream(server.url(), "/v1/completions", "{\"prompt\": \"ROMEO:\", "
                    + "\"max_tokens\": 900, \"temperature\": 0, \"ignore_eos\": true, \"stream\": true, \"method\": \"" + method + "\"}")) {
                JsonNode chunk = ServerHarness.JSON.readTree(ev.next()); // (the allowed passes' tokens may come as one chunk)
                assertTrue(chunk.path("choices").get(0).path("finish_reason").isNull());
                gated.awaitWaiting();
                assertTrue(target.kvCache().usedBlocks() > 0, "the request holds blocks while it runs");
                ev.abort(); // the client hangs up with hundreds of tokens to go
            } finally { // then the engine may go on: the server's next write finds the connection reset
                gated.release();
            }
            ServerHarness.await(() -> target.kvCache().usedBlocks() == 0 && draft.kvCache().usedBlocks() == 0,
                    Duration.ofSeconds(60), "the abandoned request's blocks are free");
        }
        assertEquals(target.kvCache().numBlocks(), target.kvCache().freeBlocks());
        assertEquals(draft.kvCache().numBlocks(), draft.kvCache().freeBlocks());
        ServerHarness.await(() -> server.requestCount("completions", "cancelled") >= cancelledBefore + 2, Duration.ofSeconds(10),
                "both streams are counted as cancelled");
    }

    @Test
    void shutdownCancelsWhatIsStillRunningAndFreesItsBlocks() throws Exception {
        TandemServer s = TandemServer.start(ServedModels.of(gated), ServerOptions.defaults().withPort(0)
                .withShutdownGrace(Duration.ofMillis(300)), new PrintStream(System.err, true));
        String url = s.url();
        gated.shut();
        gated.allow(4);
        try (ServerHarness.Events ev = ServerHarness.stream(url, "/v1/completions",
                "{\"prompt\": \"ROMEO:\", \"max_tokens\": 900, \"temperature\": 0, \"ignore_eos\": true, \"stream\": true}")) {
            ev.next();
            gated.awaitWaiting(); // mid-request, 896 tokens to go
            Thread closer = Thread.ofVirtual().start(s::close);
            ServerHarness.await(s::cancelledAtShutdown, Duration.ofSeconds(30), "the grace period is over and the request is asked to stop");
            gated.release();
            List<String> rest = ev.rest();
            closer.join();
            assertEquals("[DONE]", rest.getLast());
            JsonNode last = ServerHarness.JSON.readTree(rest.get(rest.size() - 2));
            assertEquals("cancelled", last.path("choices").get(0).path("finish_reason").asText());
        } finally {
            gated.release();
        }
        assertEquals(0, target.kvCache().usedBlocks());
        assertTrue(s.engine().stats().running() == 0);
        try {
            ServerHarness.get(url, "/health");
            throw new AssertionError("the closed server still answers");
        } catch (java.io.IOException expected) {
            // connection refused
        }
    }
}
