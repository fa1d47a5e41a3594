package dev.tandem.app;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.sampling.TokenLogprob;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code tandem generate}: one prompt, greedy or sampled, streamed as text or printed as one JSON object. */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate text from a prompt. Options not given fall back to the model's generation_config.json.")
public final class GenerateCommand implements Callable<Integer> {

    enum Format { text, json }

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR",
            description = "Hugging Face model directory (default: the bard-l model shipped in models/).")
    Path model;

    @Option(names = "--prompt", required = true, paramLabel = "TEXT", description = "The prompt.")
    String prompt;

    @Option(names = "--max-tokens", paramLabel = "N",
            description = "Most tokens to generate (default: generation_config max_new_tokens, else "
                    + GenerationRequest.DEFAULT_MAX_TOKENS + ").")
    Integer maxTokens;

    @Option(names = "--temperature", paramLabel = "T", description = "Sampling temperature; 0 = greedy.")
    Float temperature;

    @Option(names = "--top-k", paramLabel = "K", description = "Keep the K most likely tokens (0 = off).")
    Integer topK;

    @Option(names = "--top-p", paramLabel = "P", description = "Nucleus sampling mass in (0, 1] (1 = off).")
    Float topP;

    @Option(names = "--min-p", paramLabel = "P", description = "Keep tokens at least P × the top probability (0 = off).")
    Float minP;

    @Option(names = "--repetition-penalty", paramLabel = "R", description = "Penalty for tokens already present (1 = off).")
    Float repetitionPenalty;

    @Option(names = "--stop", paramLabel = "S", description = "Stop when the text reaches S (repeatable; S is cut).")
    List<String> stop = new ArrayList<>();

    @Option(names = "--seed", paramLabel = "S", description = "RNG seed (default: random, reported in JSON).")
    Long seed;

    @Option(names = "--logprobs", paramLabel = "N", defaultValue = "0",
            description = "Record each token's log-probability and the N most likely tokens (JSON).")
    int logprobs;

    @Option(names = "--threads", paramLabel = "N", defaultValue = "0", description = "CPU threads (default: all).")
    int threads;

    @Option(names = "--format", paramLabel = "text|json", defaultValue = "text",
            description = "text streams tokens as they come; json prints one object at the end.")
    Format format;

    static Path defaultModel() {
        String home = System.getProperty("tandem.home");
        Path base = home != null ? Path.of(home) : Path.of("");
        return base.resolve("models").resolve("bard-l");
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (threads < 0) {
            throw new IllegalArgumentException("--threads must be 0 (all processors) or more, but was " + threads + ".");
        }
        Path dir = model != null ? model : defaultModel();
        try (LanguageModel lm = ModelLoader.load(dir, ModelLoader.Options.defaults().withThreads(threads))) {
            long usedSeed = seed != null ? seed : new SecureRandom().nextLong();
            GenerationRequest request = withOptions(GenerationRequest.withModelDefaults(lm, prompt, usedSeed));
            SamplingParams sampling = request.sampling();
            Generator generator = new Generator(lm);
            if (format == Format.text) {
                GenerationResult r = generator.generate(request, event -> {
                    out.print(event.textDelta());
                    out.flush();
                });
                out.println();
                out.flush();
                err.printf(Locale.ROOT, "[%d prompt + %d generated tokens, finish: %s, prefill %.1f ms, decode %.1f tokens/s]%n",
                        r.usage().promptTokens(), r.usage().completionTokens(), r.finishReason().wireName(),
                        r.stats().prefillMillis(), r.stats().decodeTokensPerSecond());
                err.flush();
            } else {
                GenerationResult r = generator.generate(request);
                out.println(toJson(r, lm, sampling));
                out.flush();
            }
        }
        return 0;
    }

    /** Options given on the command line win over the model's generation_config.json defaults. */
    private GenerationRequest withOptions(GenerationRequest request) {
        SamplingParams p = request.sampling();
        try {
            if (temperature != null) {
                p = p.withTemperature(temperature);
            }
            if (topK != null) {
                p = p.withTopK(topK);
            }
            if (topP != null) {
                p = p.withTopP(topP);
            }
            if (minP != null) {
                p = p.withMinP(minP);
            }
            if (repetitionPenalty != null) {
                p = p.withRepetitionPenalty(repetitionPenalty);
            }
            request = request.withSampling(p).withStop(stop).withLogprobs(logprobs);
            return maxTokens != null ? request.withMaxTokens(maxTokens) : request;
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(optionNames(e.getMessage()), e);
        }
    }

    /** Says "--top-p" where the library says "topP", so the sentence names what the user typed. */
    private static String optionNames(String message) {
        String[][] names = {{"temperature", "--temperature"}, {"topK", "--top-k"}, {"topP", "--top-p"},
                {"minP", "--min-p"}, {"repetitionPenalty", "--repetition-penalty"}, {"max tokens", "--max-tokens"},
                {"logprobs", "--logprobs"}, {"a stop string", "--stop"}};
        for (String[] n : names) {
            if (message.startsWith(n[0])) {
                return n[1] + message.substring(n[0].length());
            }
        }
        return message;
    }

    private static String toJson(GenerationResult r, LanguageModel lm, SamplingParams sampling) throws Exception {
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode root = json.createObjectNode();
        root.put("model", lm.directory().toString());
        ArrayNode promptIds = root.putArray("prompt_ids");
        for (int id : r.promptIds()) {
            promptIds.add(id);
        }
        ArrayNode generated = root.putArray("generated_ids");
        for (int id : r.generatedIds()) {
            generated.add(id);
        }
        root.put("text", r.text());
        root.put("finish_reason", r.finishReason().wireName());
        ObjectNode usage = root.putObject("usage");
        usage.put("prompt_tokens", r.usage().promptTokens());
        usage.put("completion_tokens", r.usage().completionTokens());
        usage.put("total_tokens", r.usage().totalTokens());
        ObjectNode stats = root.putObject("stats");
        stats.put("prefill_ms", round(r.stats().prefillMillis()));
        stats.put("decode_ms", round(r.stats().decodeMillis()));
        stats.put("decode_steps", r.stats().decodeSteps());
        stats.put("decode_tokens_per_s", round(r.stats().decodeTokensPerSecond()));
        stats.put("backend", lm.backend().name());
        ObjectNode s = root.putObject("sampling");
        s.put("temperature", sampling.temperature());
        s.put("top_k", sampling.topK());
        s.put("top_p", sampling.topP());
        s.put("min_p", sampling.minP());
        s.put("repetition_penalty", sampling.repetitionPenalty());
        s.put("seed", sampling.seed());
        if (!r.logprobs().isEmpty() && !Float.isNaN(r.logprobs().getFirst().logprob())) {
            Tokenizer tok = lm.tokenizer();
            ArrayNode lp = root.putArray("logprobs");
            for (TokenEvent e : r.logprobs()) {
                ObjectNode o = lp.addObject();
                o.put("token", e.token());
                o.put("text", tok.decode(new int[] {e.token()}));
                o.put("logprob", e.logprob());
                ArrayNode top = o.putArray("top_logprobs");
                for (TokenLogprob t : e.topLogprobs()) {
                    ObjectNode to = top.addObject();
                    to.put("token", t.token());
                    to.put("text", tok.decode(new int[] {t.token()}));
                    to.put("logprob", t.logprob());
                }
            }
        }
        return json.writeValueAsString(root);
    }

    private static double round(double v) {
        return Math.round(v * 1000.0) / 1000.0;
    }
}
