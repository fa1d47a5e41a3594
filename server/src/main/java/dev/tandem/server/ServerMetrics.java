package dev.tandem.server;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * The counters of {@code GET /metrics}, in Prometheus' text format: requests by endpoint and outcome, prompt and
 * generated tokens, requests waiting and running, KV blocks in use per model, and draft tokens proposed and
 * accepted (with their ratio) per method.
 */
final class ServerMetrics {
    private final Map<String, LongAdder> requests = new ConcurrentHashMap<>();
    private final Map<String, LongAdder[]> methods = new ConcurrentHashMap<>();
    private final LongAdder promptTokens = new LongAdder();
    private final LongAdder generatedTokens = new LongAdder();

    /** One request answered: {@code outcome} is ok, invalid (4xx), rejected (429/503), cancelled or failed. */
    void request(String endpoint, String outcome) {
        requests.computeIfAbsent(endpoint + "\u0000" + outcome, k -> new LongAdder()).increment();
    }

    /** One choice generated. */
    void generated(String method, GenerationResult r) {
        generatedTokens.add(r.generatedIds().length);
        DecodeStats s = r.decodeStats();
        LongAdder[] m = methods.computeIfAbsent(method, k -> new LongAdder[] {new LongAdder(), new LongAdder(), new LongAdder()});
        m[0].increment();
        m[1].add(s.draftedTokens());
        m[2].add(s.acceptedTokens());
    }

    void prompt(int tokens) {
        promptTokens.add(tokens);
    }

    long count(String endpoint, String outcome) {
        LongAdder a = requests.get(endpoint + "\u0000" + outcome);
        return a == null ? 0 : a.sum();
    }

    String render(Engine engine, ServedModels models, int waiting) {
        StringBuilder sb = new StringBuilder();
        sb.append("# HELP tandem_requests_total HTTP requests answered, by endpoint and outcome.\n");
        sb.append("# TYPE tandem_requests_total counter\n");
        for (Map.Entry<String, LongAdder> e : new TreeMap<>(requests).entrySet()) {
            String[] k = e.getKey().split("\u0000");
            sb.append("tandem_requests_total{endpoint=\"").append(k[0]).append("\",outcome=\"").append(k[1]).append("\"} ")
                    .append(e.getValue().sum()).append('\n');
        }
        counter(sb, "tandem_prompt_tokens_total", "Prompt tokens of admitted requests.", promptTokens.sum());
        counter(sb, "tandem_generated_tokens_total", "Tokens generated, over every choice.", generatedTokens.sum());
        Engine.Stats st = engine.stats();
        gauge(sb, "tandem_queue_length", "Requests waiting for admission (in the engine's queue).", st.queued());
        gauge(sb, "tandem_requests_running", "Requests the engine is decoding.", st.running());
        gauge(sb, "tandem_requests_in_flight", "Requests the server holds (waiting, running or answering).", waiting);
        sb.append("# HELP tandem_kv_blocks_in_use KV cache blocks in use, per model.\n# TYPE tandem_kv_blocks_in_use gauge\n");
        kv(sb, "tandem_kv_blocks_in_use", models.modelId(), models.target(), false);
        if (models.draft() != null) {
            kv(sb, "tandem_kv_blocks_in_use", ServedModels.nameOf(models.draft()), models.draft(), false);
        }
        sb.append("# HELP tandem_kv_blocks_total KV cache blocks, per model.\n# TYPE tandem_kv_blocks_total gauge\n");
        kv(sb, "tandem_kv_blocks_total", models.modelId(), models.target(), true);
        if (models.draft() != null) {
            kv(sb, "tandem_kv_blocks_total", ServedModels.nameOf(models.draft()), models.draft(), true);
        }
        Map<String, LongAdder[]> byMethod = new TreeMap<>(methods);
        sb.append("# HELP tandem_method_requests_total Choices generated, per decoding method.\n# TYPE tandem_method_requests_total counter\n");
        byMethod.forEach((m, a) -> sb.append("tandem_method_requests_total{method=\"").append(m).append("\"} ").append(a[0].sum()).append('\n'));
        sb.append("# HELP tandem_draft_tokens_total Draft tokens proposed, per method.\n# TYPE tandem_draft_tokens_total counter\n");
        byMethod.forEach((m, a) -> sb.append("tandem_draft_tokens_total{method=\"").append(m).append("\"} ").append(a[1].sum()).append('\n'));
        sb.append("# HELP tandem_accepted_tokens_total Draft tokens accepted, per method.\n# TYPE tandem_accepted_tokens_total counter\n");
        byMethod.forEach((m, a) -> sb.append("tandem_accepted_tokens_total{method=\"").append(m).append("\"} ").append(a[2].sum()).append('\n'));
        sb.append("# HELP tandem_acceptance_rate Accepted over proposed draft tokens since start, per method (0 when none were proposed).\n"
                + "# TYPE tandem_acceptance_rate gauge\n");
        byMethod.forEach((m, a) -> {
            long drafted = a[1].sum();
            sb.append("tandem_acceptance_rate{method=\"").append(m).append("\"} ")
                    .append(String.format(Locale.ROOT, "%.6f", drafted == 0 ? 0.0 : (double) a[2].sum() / drafted)).append('\n');
        });
        return sb.toString();
    }

    private static void kv(StringBuilder sb, String name, String model, LanguageModel m, boolean total) {
        sb.append(name).append("{model=\"").append(model.replace("\\", "\\\\").replace("\"", "\\\"")).append("\"} ")
                .append(total ? m.kvCache().numBlocks() : m.kvCache().usedBlocks()).append('\n');
    }

    private static void counter(StringBuilder sb, String name, String help, long v) {
        sb.append("# HELP ").append(name).append(' ').append(help).append("\n# TYPE ").append(name).append(" counter\n")
                .append(name).append(' ').append(v).append('\n');
    }

    private static void gauge(StringBuilder sb, String name, String help, long v) {
        sb.append("# HELP ").append(name).append(' ').append(help).append("\n# TYPE ").append(name).append(" gauge\n")
                .append(name).append(' ').append(v).append('\n');
    }
}
