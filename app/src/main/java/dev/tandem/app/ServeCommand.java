package dev.tandem.app;

import dev.tandem.decoding.NamedMethods;
import dev.tandem.runtime.DType;
import dev.tandem.server.ServedModels;
import dev.tandem.server.ServerOptions;
import dev.tandem.server.TandemServer;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.bert.Encoders;
import dev.tandem.transformer.chat.ChatTemplate;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Callable;

/** {@code tandem serve}: the OpenAI-compatible HTTP server ({@link TandemServer}) over one model. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serves a model over HTTP with OpenAI's API: POST /v1/completions, /v1/chat/completions (stream: true "
                + "for server-sent events), /v1/embeddings (with --embedding-model); GET /v1/models, /health, /metrics "
                + "(Prometheus). Prints 'listening on http://HOST:PORT' once ready; SIGTERM or Ctrl-C lets running requests "
                + "finish (up to --shutdown-grace), cancels the rest and exits.",
                "Requests name a decoding method with the extra field \"method\" (" + "plain, speculative, tree, ngram, lookahead, "
                        + "collab; speculative, tree and collab need --draft) and \"draft_length\"; \"top_k\", \"min_p\", "
                        + "\"repetition_penalty\" and \"ignore_eos\" are also accepted."},
        exitCodeListHeading = Main.EXIT_CODES_HEADING, exitCodeList = {Main.EXIT_0, Main.EXIT_1, Main.EXIT_2, Main.EXIT_130, Main.EXIT_143})
public final class ServeCommand implements Callable<Integer> {

    /** Helidon's own INFO lines (features, sockets bound and closed) would bury ours; warnings still show. */
    private static final java.util.logging.Logger HELIDON_LOG = java.util.logging.Logger.getLogger("io.helidon");
    /** Its start-up logs a failed bind as a stack trace; TandemServer.start says it in one sentence instead. */
    private static final java.util.logging.Logger HELIDON_START_LOG = java.util.logging.Logger.getLogger("io.helidon.webserver.LoomServer");

    /** Running servers' stop signals, so that tests can stop a serve command they started in-process. */
    private static final Set<CountDownLatch> RUNNING = ConcurrentHashMap.newKeySet();

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR|FILE.gguf", required = true, description = "The model to serve (directory or GGUF file).")
    Path model;

    @Option(names = "--draft", paramLabel = "DIR|FILE.gguf",
            description = "A draft model sharing the model's tokenizer, for requests with \"method\": speculative, tree or collab.")
    Path draft;

    @Option(names = "--method", paramLabel = "NAME", defaultValue = "plain",
            description = "The method of requests that name none: plain (default), speculative, tree, ngram, lookahead or collab.")
    String method;

    @Option(names = "--embedding-model", paramLabel = "DIR|minilm",
            description = "Serve POST /v1/embeddings with this BERT encoder directory, or minilm for the embedded all-MiniLM-L6-v2.")
    String embeddingModel;

    @Option(names = "--chat-template", paramLabel = "FILE",
            description = "The chat template of /v1/chat/completions: a tokenizer_config.json or a .jinja file (default: the model's own "
                    + "tokenizer_config.json chat_template; without one, chat requests are answered 400).")
    Path chatTemplate;

    @Option(names = "--host", paramLabel = "ADDR", defaultValue = "127.0.0.1",
            description = "The address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for every interface).")
    String host;

    @Option(names = "--port", paramLabel = "N", defaultValue = "8080", description = "The port (default 8080; 0 picks a free one).")
    int port;

    @Option(names = "--api-key", paramLabel = "KEY",
            description = "Require 'Authorization: Bearer KEY' on every /v1/ request (default: none; /health and /metrics stay open).")
    String apiKey;

    @Option(names = "--max-running", paramLabel = "N", defaultValue = "32",
            description = "Choices decoded at once, batched into each step (default 32).")
    int maxRunning;

    @Option(names = "--max-queued", paramLabel = "N", defaultValue = "64",
            description = "Choices waiting for a running slot (default 64); beyond that requests are answered 429 with Retry-After.")
    int maxQueued;

    @Option(names = "--max-tokens-cap", paramLabel = "N", defaultValue = "4096",
            description = "The most tokens one choice may ask for (default 4096); max_tokens above it is answered 400.")
    int maxTokensCap;

    @Option(names = "--max-body-size", paramLabel = "SIZE", defaultValue = "4M",
            description = "The largest request body (default 4M); larger ones are answered 413.")
    String maxBodySize;

    @Option(names = "--shutdown-grace", paramLabel = "SECONDS", defaultValue = "10",
            description = "On SIGTERM, how long running requests may finish before they are cancelled (default 10).")
    int shutdownGrace;

    @Option(names = "--threads", paramLabel = "N", defaultValue = "0", description = "CPU threads (default: all).")
    int threads;

    @Option(names = "--device", paramLabel = "NAME", defaultValue = "cpu", description = "cpu (default), cuda or auto.")
    String device;

    @Option(names = "--kv-memory", paramLabel = "SIZE",
            description = "KV cache memory per model (default: --max-running full contexts, at most 1 GiB).")
    String kvMemory;

    @Override
    public Integer call() throws Exception {
        if (threads < 0) {
            throw new UsageException("--threads must be 0 (all processors) or more, but was " + threads + ".");
        }
        if (!NamedMethods.NAMES.contains(method)) {
            throw new UsageException("--method must be one of " + String.join(", ", NamedMethods.NAMES) + ", but was \"" + method + "\".");
        }
        if (NamedMethods.WITH_DRAFT.contains(method) && draft == null) {
            throw new UsageException("--method " + method + " needs --draft DIR.");
        }
        if (shutdownGrace < 0) {
            throw new UsageException("--shutdown-grace must be 0 or more seconds, but was " + shutdownGrace + ".");
        }
        ServerOptions options;
        try {
            options = ServerOptions.defaults().withHost(host).withPort(port).withApiKey(apiKey).withMaxRunning(maxRunning)
                    .withMaxQueued(maxQueued).withMaxTokensCap(maxTokensCap)
                    .withMaxBodyBytes(Sizes.parseBytes(maxBodySize, "--max-body-size")).withDefaultMethod(method)
                    .withShutdownGrace(Duration.ofSeconds(shutdownGrace));
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage(), e);
        }
        threads = Main.capThreads(threads, "--threads", spec.commandLine().getErr());
        HELIDON_LOG.setLevel(java.util.logging.Level.WARNING);
        HELIDON_START_LOG.setLevel(java.util.logging.Level.OFF);
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try (LanguageModel target = ModelLoader.load(model, loadOptions(model));
             LanguageModel draftModel = draft == null ? null : ModelLoader.load(draft, loadOptions(draft).withBackend(target.backend()));
             BertEncoder encoder = embeddingModel == null ? null
                     : Encoders.open("minilm".equals(embeddingModel) ? null : Path.of(embeddingModel), null, threads);
             Embedder embedder = encoder == null ? null : Embedder.batching(encoder)) {
            // After the model, so that a mistyped --model gets the loader's sentence rather than the template's.
            ChatTemplate template = chatTemplate != null ? ChatTemplate.fromFile(chatTemplate) : ChatTemplate.forModel(model).orElse(null);
            ServedModels served = ServedModels.of(target).withDraft(draftModel).withChatTemplate(template);
            if (embedder != null) {
                served = served.withEmbedder("minilm".equals(embeddingModel) ? Encoders.MINILM
                        : Path.of(embeddingModel).getFileName().toString(), embedder);
            }
            CountDownLatch stop = new CountDownLatch(1);
            try (TandemServer server = TandemServer.start(served, options, new PrintStream(System.err, true))) {
                Thread hook = Thread.ofPlatform().unstarted(() -> {
                    err.println("tandem serve: stopping (running requests get " + shutdownGrace + " s to finish)");
                    err.flush();
                    server.close();
                    stop.countDown();
                });
                Runtime.getRuntime().addShutdownHook(hook);
                RUNNING.add(stop);
                out.println("serving " + served.modelId() + (draftModel != null ? " (draft " + ServedModels.nameOf(draftModel) + ")" : "")
                        + (template == null ? ", no chat template" : "") + (embedder != null ? ", embeddings " + served.embeddingModelId() : ""));
                out.println("listening on " + server.url());
                out.flush();
                try {
                    stop.await();
                } finally {
                    RUNNING.remove(stop);
                    try {
                        Runtime.getRuntime().removeShutdownHook(hook);
                    } catch (IllegalStateException shuttingDown) {
                        // the hook is running: it closes the server
                    }
                }
            }
        }
        return 0;
    }

    /** Stops every serve command running in this JVM as SIGTERM would (for tests). */
    static void stopAll() {
        for (CountDownLatch l : List.copyOf(RUNNING)) {
            l.countDown();
        }
    }

    private ModelLoader.Options loadOptions(Path dir) {
        ModelLoader.Options options = ModelLoader.Options.defaults().withThreads(threads).withDevice(device);
        if (kvMemory != null) {
            return options.withKvMemory(Sizes.parseBytes(kvMemory, "--kv-memory"));
        }
        return options.withKvMemory(Sizes.kvMemoryFor(dir, maxRunning, DType.F32));
    }
}
