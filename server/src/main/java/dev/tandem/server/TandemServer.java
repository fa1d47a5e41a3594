package dev.tandem.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.chat.ChatMessage;
import dev.tandem.transformer.chat.ChatTemplate;
import dev.tandem.transformer.chat.ChatTemplateException;
import dev.tandem.transformer.tokenizer.Tokenizer;
import io.helidon.http.HeaderNames;
import io.helidon.http.Status;
import io.helidon.webserver.ServerConnectionException;
import io.helidon.webserver.WebServer;
import io.helidon.webserver.http.Handler;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An OpenAI-compatible HTTP server over one continuous-batching {@link Engine}: {@code POST /v1/completions},
 * {@code POST /v1/chat/completions} (both with {@code stream: true} as server-sent events, one chunk per group of
 * tokens accepted together, {@code data: [DONE]} last), {@code POST /v1/embeddings} (when an encoder is served),
 * {@code GET /v1/models}, {@code GET /health} and {@code GET /metrics} (Prometheus text). Helidon SE's web server
 * runs each request on a virtual thread; handlers block on the engine.
 *
 * <p><b>Limits.</b> At most {@link ServerOptions#maxRunning} choices decode at once and
 * {@link ServerOptions#maxQueued} more wait; a request that would exceed that is answered 429 with
 * {@code Retry-After}. Bodies above {@link ServerOptions#maxBodyBytes} are answered 413, {@code max_tokens} above
 * {@link ServerOptions#maxTokensCap} 400. Every refusal is an OpenAI error object with one sentence, never a
 * stack trace. A streaming client that goes away is noticed at the next chunk written: its requests are
 * cancelled and their KV blocks freed.
 *
 * <p><b>Shutdown.</b> {@link #close()} answers new requests 503, gives running ones
 * {@link ServerOptions#shutdownGrace} to finish, cancels the rest (finish reason {@code cancelled}, blocks
 * freed), then stops the web server and the engine. The models stay open (the caller's).
 */
public final class TandemServer implements AutoCloseable {
    private static final String SSE_DONE = "data: [DONE]\n\n";

    private final ServedModels models;
    private final ServerOptions options;
    private final Engine engine;
    private final RequestReader reader;
    private final ServerMetrics metrics = new ServerMetrics();
    private final Semaphore admission;
    private final Set<EngineHandle> live = ConcurrentHashMap.newKeySet();
    private final AtomicLong responseIds = new AtomicLong();
    private final PrintStream log;
    private final Object drainLock = new Object();
    private int inFlight; // guarded by drainLock
    private volatile boolean draining;
    private volatile boolean cancelledAtShutdown; // for tests: close() has asked what still ran to stop
    private boolean closed;
    private WebServer server;

    private TandemServer(ServedModels models, ServerOptions options, PrintStream log) {
        this.models = models;
        this.options = options;
        this.log = log;
        this.engine = new Engine(models.target(), Engine.Options.defaults().withMaxRunning(options.maxRunning())
                .withMaxQueued(options.maxRunning() + options.maxQueued()));
        this.reader = new RequestReader(models, options);
        this.admission = new Semaphore(options.maxRunning() + options.maxQueued());
    }

    /** Starts serving {@code models}; returns once the port is bound. Errors go to {@code log} as one line each. */
    public static TandemServer start(ServedModels models, ServerOptions options, PrintStream log) {
        TandemServer s = new TandemServer(models, options, log);
        try {
            s.server = WebServer.builder()
                    .host(options.host())
                    .port(options.port())
                    .shutdownHook(false)
                    .routing(r -> r
                            .post("/v1/completions", s.guarded("completions", s::completions))
                            .post("/v1/chat/completions", s.guarded("chat", s::chat))
                            .post("/v1/embeddings", s.guarded("embeddings", s::embeddings))
                            .get("/v1/models", s.guarded("models", s::listModels))
                            .get("/health", (req, res) -> s.health(res))
                            .get("/metrics", (req, res) -> s.metrics(res))
                            .any((req, res) -> s.sendError(res, new ApiException(404, "invalid_request_error", null, "not_found",
                                    "there is no " + req.prologue().method().text() + " " + req.path().path() + " here; this server "
                                            + "answers POST /v1/completions, /v1/chat/completions, /v1/embeddings and GET /v1/models, "
                                            + "/health, /metrics."))))
                    .build()
                    .start();
        } catch (RuntimeException e) {
            s.engine.close();
            throw new TandemException("cannot listen on " + options.host() + ":" + options.port() + ": " + e.getMessage(), e);
        }
        if (!s.server.isRunning() || s.server.port() < 1) { // Helidon logs a failed bind and starts without the socket
            s.server.stop();
            s.engine.close();
            throw new TandemException("cannot listen on " + options.host() + ":" + options.port() + ": the port is taken or the "
                    + "address is not one of this machine's (--host, --port; --port 0 picks a free port).");
        }
        return s;
    }

    /** The port the server listens on (the one picked when 0 was asked for). */
    public int port() {
        return server.port();
    }

    /** {@code http://host:port}. */
    public String url() {
        return "http://" + options.host() + ":" + port();
    }

    /** The engine every request goes through. */
    public Engine engine() {
        return engine;
    }

    /** Whether {@link #close()} has passed its grace period and asked the requests still running to stop. */
    boolean cancelledAtShutdown() {
        return cancelledAtShutdown;
    }

    /** Requests answered with {@code outcome} (ok, invalid, rejected, cancelled, failed) at {@code endpoint}. */
    long requestCount(String endpoint, String outcome) {
        return metrics.count(endpoint, outcome);
    }

    // ---- handlers ----

    private interface Body {
        void handle(ServerRequest req, ServerResponse res) throws Exception;
    }

    /** Auth, the drain gate, and every failure as an OpenAI error object (never Helidon's 500 page). */
    private Handler guarded(String endpoint, Body body) {
        return (req, res) -> {
            if (!enter()) {
                metrics.request(endpoint, "rejected");
                sendError(res, new ApiException(503, "server_error", null, "shutting_down", "the server is shutting down."));
                return;
            }
            try {
                authorize(req);
                body.handle(req, res);
            } catch (ApiException e) {
                metrics.request(endpoint, e.status() == 429 || e.status() == 503 ? "rejected" : "invalid");
                if (!res.isSent()) {
                    if (e.status() == 429) {
                        res.header(HeaderNames.RETRY_AFTER, "1");
                    }
                    sendError(res, e);
                }
            } catch (RuntimeException | Error e) {
                metrics.request(endpoint, "failed");
                log.println("tandem serve: " + endpoint + " failed: " + e);
                if (!res.isSent()) {
                    sendError(res, new ApiException(500, "server_error", null, null, "the server failed on this request: "
                            + (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage())));
                }
            } catch (Exception e) {
                metrics.request(endpoint, "failed");
                log.println("tandem serve: " + endpoint + " failed: " + e);
                if (!res.isSent()) {
                    sendError(res, new ApiException(500, "server_error", null, null, "the server failed on this request: " + e.getMessage()));
                }
            } finally {
                leave();
            }
        };
    }

    private void authorize(ServerRequest req) {
        if (options.apiKey() == null) {
            return;
        }
        String auth = req.headers().first(HeaderNames.AUTHORIZATION).orElse("");
        byte[] want = ("Bearer " + options.apiKey()).getBytes(StandardCharsets.UTF_8);
        if (!MessageDigest.isEqual(want, auth.getBytes(StandardCharsets.UTF_8))) {
            throw new ApiException(401, "invalid_request_error", null, "invalid_api_key", auth.isEmpty()
                    ? "this server needs an API key: send the header Authorization: Bearer KEY."
                    : "the API key in the Authorization header is not this server's.");
        }
    }

    private void completions(ServerRequest req, ServerResponse res) throws InterruptedException {
        JsonNode body = RequestReader.object(readJson(req));
        RequestReader.Common c = reader.common(body, false);
        List<Object> prompts = RequestReader.prompts(body);
        Tokenizer tok = models.target().tokenizer();
        List<int[]> promptIds = new ArrayList<>();
        for (Object p : prompts) {
            promptIds.add(p instanceof String s ? tok.withSpecialTokens(tok.encode(s)) : (int[]) p);
        }
        run("completions", res, c, promptIds, false);
    }

    private void chat(ServerRequest req, ServerResponse res) throws InterruptedException {
        JsonNode body = RequestReader.object(readJson(req));
        ChatTemplate template = models.chatTemplate();
        RequestReader.Common c = reader.common(body, true);
        List<ChatMessage> messages = RequestReader.messages(body);
        if (template == null) {
            throw ApiException.invalid("messages", "the model \"" + models.modelId() + "\" has no chat template "
                    + "(tokenizer_config.json chat_template), so it cannot take chat requests; use /v1/completions, or start "
                    + "tandem serve with --chat-template FILE.");
        }
        String rendered;
        try {
            rendered = template.render(messages, true);
        } catch (ChatTemplateException e) {
            throw ApiException.invalid("messages", e.getMessage());
        }
        int[] ids = ChatTemplate.promptIds(models.target().tokenizer(), rendered);
        run("chat", res, c, List.of(ids), true);
    }

    /** Admits, submits, and answers (whole or streamed) the choices of every prompt. */
    private void run(String endpoint, ServerResponse res, RequestReader.Common c, List<int[]> promptIds, boolean chat)
            throws InterruptedException {
        LanguageModel target = models.target();
        int context = target.config().maxContext();
        List<GenerationRequest> requests = new ArrayList<>();
        for (int p = 0; p < promptIds.size(); p++) {
            int[] ids = promptIds.get(p);
            if (ids.length >= context) {
                throw ApiException.invalid(chat ? "messages" : "prompt", "context_length_exceeded", "the prompt has " + ids.length
                        + " tokens, but the model's context is " + context + " tokens, which must also hold at least one new token.");
            }
            int maxTokens = c.maxTokensGiven() ? c.maxTokens() : Math.max(1, Math.min(c.maxTokens(), context - ids.length));
            for (int i = 0; i < c.choices(); i++) {
                requests.add(c.request(null, ids, maxTokens, i));
            }
        }
        DecodingStrategy strategy = reader.strategy(c);
        if (!admission.tryAcquire(requests.size())) {
            throw new ApiException(429, "rate_limit_error", null, "queue_full", "the server is busy (" + options.maxRunning()
                    + " requests running and " + options.maxQueued() + " waiting at most); retry after a second.");
        }
        LinkedBlockingQueue<Item> events = new LinkedBlockingQueue<>();
        List<EngineHandle> handles = new ArrayList<>();
        try {
            for (int i = 0; i < requests.size(); i++) {
                int index = i;
                EngineHandle h;
                try {
                    h = engine.submit(requests.get(i), strategy, e -> events.add(new Item(index, e, null, null)));
                } catch (TandemException e) {
                    throw ApiException.invalid(chat ? "messages" : "prompt", e.getMessage());
                }
                handles.add(h);
                live.add(h);
                h.future().whenComplete((r, t) -> events.add(new Item(index, null, r, t)));
            }
            for (int[] ids : promptIds) {
                metrics.prompt(ids.length);
            }
            String id = (chat ? "chatcmpl-" : "cmpl-") + Long.toHexString(System.nanoTime()) + responseIds.incrementAndGet();
            long created = Instant.now().getEpochSecond();
            if (c.stream()) {
                stream(endpoint, res, c, chat, id, created, events, handles, promptIds);
            } else {
                whole(endpoint, res, c, chat, id, created, handles, promptIds, strategy.name());
            }
        } finally {
            for (EngineHandle h : handles) {
                h.close(); // a no-op for a request that ended; else cancels it and waits until its blocks are free
                live.remove(h);
            }
            admission.release(requests.size());
        }
    }

    private record Item(int choice, TokenEvent event, GenerationResult result, Throwable error) {
    }

    private void whole(String endpoint, ServerResponse res, RequestReader.Common c, boolean chat, String id, long created,
                       List<EngineHandle> handles, List<int[]> promptIds, String method) {
        Tokenizer tok = models.target().tokenizer();
        ObjectNode root = OpenAiJson.envelope(id, chat ? "chat.completion" : "text_completion", created, models.modelId());
        ArrayNode choices = (ArrayNode) root.get("choices");
        int completion = 0;
        for (int i = 0; i < handles.size(); i++) {
            GenerationResult r;
            try {
                r = handles.get(i).result();
            } catch (RuntimeException e) {
                throw new IllegalStateException("decoding failed: " + e.getMessage(), e);
            }
            metrics.generated(method, r);
            completion += r.usage().completionTokens();
            ObjectNode choice = choices.addObject();
            choice.put("index", i);
            if (chat) {
                ObjectNode msg = choice.putObject("message");
                msg.put("role", "assistant");
                msg.put("content", r.text());
                choice.set("logprobs", c.logprobs() ? OpenAiJson.chatLogprobs(tok, r.logprobs(), c.topLogprobs()) : null);
            } else {
                choice.put("text", r.text());
                choice.set("logprobs", c.logprobs() ? OpenAiJson.completionLogprobs(tok, r.logprobs(), c.topLogprobs(), 0) : null);
            }
            choice.put("finish_reason", OpenAiJson.finishReason(r.finishReason()));
        }
        int prompt = 0;
        for (int[] p : promptIds) {
            prompt += p.length;
        }
        root.set("usage", OpenAiJson.usage(prompt, completion));
        metrics.request(endpoint, "ok");
        sendJson(res, 200, root);
    }

    private void stream(String endpoint, ServerResponse res, RequestReader.Common c, boolean chat, String id, long created,
                        LinkedBlockingQueue<Item> events, List<EngineHandle> handles, List<int[]> promptIds) throws InterruptedException {
        Tokenizer tok = models.target().tokenizer();
        String object = chat ? "chat.completion.chunk" : "text_completion";
        res.status(Status.OK_200);
        res.header(HeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8");
        res.header(HeaderNames.CACHE_CONTROL, "no-cache");
        int n = handles.size();
        int[] textOffset = new int[n];
        int completion = 0;
        int ended = 0;
        String method = handles.getFirst().method();
        try (OutputStream out = res.outputStream()) {
            if (chat) {
                for (int i = 0; i < n; i++) { // the first chunk of each choice says who speaks
                    ObjectNode chunk = OpenAiJson.envelope(id, object, created, models.modelId());
                    ObjectNode ch = ((ArrayNode) chunk.get("choices")).addObject();
                    ch.put("index", i);
                    ch.putObject("delta").put("role", "assistant").put("content", "");
                    ch.putNull("logprobs");
                    ch.putNull("finish_reason");
                    write(out, chunk);
                }
                out.flush();
            }
            while (ended < n) {
                List<Item> batch = new ArrayList<>();
                batch.add(events.take());
                events.drainTo(batch); // what arrived together: the tokens one step accepted
                Map<Integer, List<TokenEvent>> byChoice = new HashMap<>();
                List<Item> finals = new ArrayList<>();
                for (Item it : batch) {
                    if (it.event() != null) {
                        byChoice.computeIfAbsent(it.choice(), k -> new ArrayList<>()).add(it.event());
                    } else {
                        finals.add(it);
                    }
                }
                for (Map.Entry<Integer, List<TokenEvent>> e : byChoice.entrySet()) {
                    int i = e.getKey();
                    StringBuilder text = new StringBuilder();
                    for (TokenEvent ev : e.getValue()) {
                        text.append(ev.textDelta());
                    }
                    if (text.isEmpty() && !c.logprobs()) {
                        continue; // held-back bytes of a character or a possible stop string: nothing to show yet
                    }
                    ObjectNode chunk = OpenAiJson.envelope(id, object, created, models.modelId());
                    ObjectNode ch = ((ArrayNode) chunk.get("choices")).addObject();
                    ch.put("index", i);
                    if (chat) {
                        ch.putObject("delta").put("content", text.toString());
                        ch.set("logprobs", c.logprobs() ? OpenAiJson.chatLogprobs(tok, e.getValue(), c.topLogprobs()) : null);
                    } else {
                        ch.put("text", text.toString());
                        ch.set("logprobs", c.logprobs() ? OpenAiJson.completionLogprobs(tok, e.getValue(), c.topLogprobs(), textOffset[i]) : null);
                    }
                    ch.putNull("finish_reason");
                    textOffset[i] += text.length();
                    write(out, chunk);
                }
                for (Item f : finals) {
                    ended++;
                    if (f.error() != null) {
                        ObjectNode err = OpenAiJson.error(new ApiException(500, "server_error", null, null,
                                "decoding failed: " + f.error().getMessage()));
                        write(out, err);
                        metrics.request(endpoint, "failed");
                        out.flush();
                        return;
                    }
                    GenerationResult r = f.result();
                    metrics.generated(method, r);
                    completion += r.usage().completionTokens();
                    ObjectNode chunk = OpenAiJson.envelope(id, object, created, models.modelId());
                    ObjectNode ch = ((ArrayNode) chunk.get("choices")).addObject();
                    ch.put("index", f.choice());
                    if (chat) {
                        ch.putObject("delta");
                    } else {
                        ch.put("text", "");
                    }
                    ch.putNull("logprobs");
                    ch.put("finish_reason", OpenAiJson.finishReason(r.finishReason()));
                    write(out, chunk);
                }
                out.flush();
            }
            if (c.includeUsage()) {
                int prompt = 0;
                for (int[] p : promptIds) {
                    prompt += p.length;
                }
                ObjectNode chunk = OpenAiJson.envelope(id, object, created, models.modelId());
                chunk.set("usage", OpenAiJson.usage(prompt, completion));
                write(out, chunk);
            }
            out.write(SSE_DONE.getBytes(StandardCharsets.UTF_8));
            out.flush();
            metrics.request(endpoint, "ok");
        } catch (IOException | UncheckedIOException | ServerConnectionException e) {
            // The client went away: run()'s finally cancels what still runs and frees its blocks.
            metrics.request(endpoint, "cancelled");
        }
    }

    private static void write(OutputStream out, JsonNode chunk) throws IOException {
        out.write(("data: " + OpenAiJson.MAPPER.writeValueAsString(chunk) + "\n\n").getBytes(StandardCharsets.UTF_8));
    }

    private void embeddings(ServerRequest req, ServerResponse res) {
        JsonNode body = RequestReader.object(readJson(req));
        if (models.embedder() == null) {
            throw ApiException.invalid("model", "model_not_found", "this server has no embedding model; start tandem serve with "
                    + "--embedding-model DIR to serve /v1/embeddings.");
        }
        reader.checkModel(body, models.embeddingModelId());
        JsonNode enc = body.get("encoding_format");
        boolean base64 = enc != null && !enc.isNull() && "base64".equals(enc.asText());
        if (enc != null && !enc.isNull() && !base64 && !"float".equals(enc.asText())) {
            throw ApiException.invalid("encoding_format", "'encoding_format' must be \"float\" or \"base64\".");
        }
        if (body.hasNonNull("dimensions") && body.get("dimensions").asInt(-1) != models.embedder().dimension()) {
            throw ApiException.invalid("dimensions", "'dimensions' must be " + models.embedder().dimension() + " (the encoder's).");
        }
        JsonNode input = body.get("input");
        List<String> texts = new ArrayList<>();
        if (input != null && input.isTextual()) {
            texts.add(input.asText());
        } else if (input != null && input.isArray() && !input.isEmpty()) {
            for (JsonNode t : input) {
                if (!t.isTextual()) {
                    throw ApiException.invalid("input", "'input' must be a string or an array of strings (token ids are not supported).");
                }
                texts.add(t.asText());
            }
        } else {
            throw ApiException.invalid("input", "'input' must be a string or a non-empty array of strings.");
        }
        if (texts.size() > 2048) {
            throw ApiException.invalid("input", "at most 2048 inputs per request, but " + texts.size() + " were given.");
        }
        Embedder.Embeddings embedded;
        try {
            embedded = models.embedder().embedAllCounted(texts);
        } catch (TandemException | IllegalArgumentException e) {
            throw ApiException.invalid("input", e.getMessage());
        }
        ObjectNode root = OpenAiJson.MAPPER.createObjectNode();
        root.put("object", "list");
        ArrayNode data = root.putArray("data");
        List<float[]> vectors = embedded.vectors();
        for (int i = 0; i < vectors.size(); i++) {
            ObjectNode d = data.addObject();
            d.put("object", "embedding");
            d.put("index", i);
            if (base64) { // the floats' little-endian bytes, as OpenAI sends them
                ByteBuffer b = ByteBuffer.allocate(4 * vectors.get(i).length).order(ByteOrder.LITTLE_ENDIAN);
                b.asFloatBuffer().put(vectors.get(i));
                d.put("embedding", Base64.getEncoder().encodeToString(b.array()));
            } else {
                ArrayNode v = d.putArray("embedding");
                for (float x : vectors.get(i)) {
                    v.add(x);
                }
            }
        }
        root.put("model", models.embeddingModelId());
        ObjectNode usage = root.putObject("usage");
        usage.put("prompt_tokens", embedded.inputTokens());
        usage.put("total_tokens", embedded.inputTokens());
        metrics.request("embeddings", "ok");
        sendJson(res, 200, root);
    }

    private void listModels(ServerRequest req, ServerResponse res) {
        ObjectNode root = OpenAiJson.MAPPER.createObjectNode();
        root.put("object", "list");
        ArrayNode data = root.putArray("data");
        long created = Instant.now().getEpochSecond();
        for (String m : models.embeddingModelId() == null ? List.of(models.modelId()) : List.of(models.modelId(), models.embeddingModelId())) {
            ObjectNode o = data.addObject();
            o.put("id", m);
            o.put("object", "model");
            o.put("created", created);
            o.put("owned_by", "tandem");
        }
        metrics.request("models", "ok");
        sendJson(res, 200, root);
    }

    private void health(ServerResponse res) {
        ObjectNode root = OpenAiJson.MAPPER.createObjectNode();
        root.put("status", draining ? "shutting_down" : "ok");
        sendJson(res, draining ? 503 : 200, root);
    }

    private void metrics(ServerResponse res) {
        int held;
        synchronized (drainLock) {
            held = inFlight;
        }
        res.status(Status.OK_200);
        res.header(HeaderNames.CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
        res.send(metrics.render(engine, models, held).getBytes(StandardCharsets.UTF_8));
    }

    // ---- plumbing ----

    private JsonNode readJson(ServerRequest req) {
        long max = options.maxBodyBytes();
        OptionalLong declared = req.headers().contentLength();
        if (declared.isPresent() && declared.getAsLong() > max) {
            throw tooLarge(declared.getAsLong());
        }
        byte[] bytes;
        try (InputStream in = req.content().inputStream()) {
            bytes = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, max + 1));
        } catch (IOException | UncheckedIOException e) {
            throw ApiException.invalid(null, "the request body could not be read: " + e.getMessage());
        }
        if (bytes.length > max) {
            throw tooLarge(-1);
        }
        if (bytes.length == 0) {
            throw ApiException.invalid(null, "the request body is empty; send a JSON object.");
        }
        try {
            return OpenAiJson.MAPPER.readTree(bytes);
        } catch (JsonProcessingException e) {
            throw ApiException.invalid(null, "the request body is not valid JSON: " + e.getOriginalMessage() + " (line "
                    + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ").");
        } catch (IOException e) {
            throw ApiException.invalid(null, "the request body could not be read: " + e.getMessage());
        }
    }

    private ApiException tooLarge(long size) {
        return new ApiException(413, "invalid_request_error", null, "request_too_large", "the request body is "
                + (size >= 0 ? size + " bytes, " : "") + "larger than this server's limit of " + options.maxBodyBytes()
                + " bytes (tandem serve --max-body-size).");
    }

    private void sendError(ServerResponse res, ApiException e) {
        try {
            sendJson(res, e.status(), OpenAiJson.error(e));
        } catch (IllegalStateException | UncheckedIOException | ServerConnectionException alreadyStreaming) {
            // a stream's headers are out (or its client is gone): nothing more can be said on this response
        }
    }

    private static void sendJson(ServerResponse res, int status, JsonNode body) {
        try {
            byte[] bytes = OpenAiJson.MAPPER.writeValueAsBytes(body);
            res.status(Status.create(status));
            res.header(HeaderNames.CONTENT_TYPE, "application/json");
            res.send(bytes);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private boolean enter() {
        synchronized (drainLock) {
            if (draining) {
                return false;
            }
            inFlight++;
            return true;
        }
    }

    private void leave() {
        synchronized (drainLock) {
            inFlight--;
            drainLock.notifyAll();
        }
    }

    /**
     * Stops taking requests (503), lets running ones finish for the grace period, cancels the rest and frees
     * their blocks, then stops the web server and the engine. Idempotent.
     */
    @Override
    public void close() {
        synchronized (drainLock) {
            if (closed) {
                return;
            }
            closed = true;
            draining = true;
            long deadline = System.nanoTime() + options.shutdownGrace().toNanos();
            try {
                while (inFlight > 0 && System.nanoTime() < deadline) {
                    drainLock.wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        for (EngineHandle h : live) {
            h.cancel();
        }
        cancelledAtShutdown = true;
        synchronized (drainLock) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            try {
                while (inFlight > 0 && System.nanoTime() < deadline) {
                    drainLock.wait(100);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        server.stop();
        engine.close();
    }
}
