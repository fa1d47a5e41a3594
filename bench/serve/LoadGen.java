/*
 * Load generator for OpenAI-compatible completion servers (`tandem serve`, llama-server, ...).
 * A single file on the JDK alone, run from source:
 *
 *   $JAVA25/bin/java bench/serve/LoadGen.java --url http://127.0.0.1:PORT --clients 1,8,32 \
 *       --requests-per-client 2 --max-tokens 32 --prompt "ROMEO:" --endpoint completions --out results.json
 *
 * For each concurrency level C it starts C clients together; each sends --requests-per-client streaming
 * requests one after the other ({"model", "prompt" or "messages", "max_tokens", "temperature": 0,
 * "stream": true, "stream_options": {"include_usage": true}}, plus "ignore_eos": true with --ignore-eos)
 * and "cache_prompt": false with --no-cache-prompt (llama-server otherwise reuses the KV cache of a slot's
 * previous prompt, so a repeated prompt costs one token of prefill; servers without the field ignore it)
 * and reads the server-sent events up to `data: [DONE]`. --model defaults to the first id of GET /v1/models.
 * Per level it reports:
 *
 *   requests/s      completed requests / wall time of the level (first request sent to last one done)
 *   TTFT            time from sending a request to the first event whose text is not empty, p50/p90/p99
 *   output tokens/s output tokens of all completed requests / wall time of the level; a request's tokens
 *                   are the final event's usage.completion_tokens where the server sends it, otherwise
 *                   the number of events with non-empty text (the JSON says which source it used; a server
 *                   may put several tokens into one event, so that count can fall short)
 *   errors          requests with a non-200 status, an exception, or a stream without [DONE]
 *
 * One warm-up request (--warmup N) runs before the first level and is not counted; before each level every
 * client also sends one untimed 2-token request, all at once, so that the level's clients start on open
 * connections (--no-level-warmup leaves that out; see runLevel for why). The results go to
 * --out as JSON and to stdout as a Markdown table.
 */

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public class LoadGen {

    record Options(String url, int[] clients, int requestsPerClient, int maxTokens, String prompt,
                   String endpoint, String model, boolean ignoreEos, boolean noCachePrompt, boolean levelWarmup,
                   int warmup, String label, Path out, int timeoutSeconds) {}

    /** One request's outcome; times in nanoseconds from its send. */
    record Sample(boolean ok, String error, long ttftNanos, long totalNanos, int tokens, boolean tokensFromUsage,
                  int textEvents, String text, boolean retried) {}

    public static void main(String[] args) throws Exception {
        Options o = parse(args);
        HttpClient http = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10))
                .executor(Executors.newVirtualThreadPerTaskExecutor())
                .build();
        String model = o.model() != null ? o.model() : firstModel(http, o.url());
        System.err.printf("loadgen: %s model %s, endpoint %s, max_tokens %d, prompt %d chars%n",
                o.url(), model, o.endpoint(), o.maxTokens(), o.prompt().length());

        String firstText = null;
        for (int i = 0; i < o.warmup(); i++) {
            Sample s = request(http, o, model);
            if (!s.ok()) {
                System.err.println("loadgen: warm-up request failed: " + s.error());
                System.exit(1);
            }
            firstText = s.text();
            System.err.printf("loadgen: warm-up %d tokens in %.0f ms: %s%n", s.tokens(), s.totalNanos() / 1e6,
                    quote(s.text()));
        }

        List<Map<String, Object>> levels = new ArrayList<>();
        for (int c : o.clients()) {
            Map<String, Object> level = runLevel(http, o, model, c);
            levels.add(level);
            System.err.printf("loadgen: %d clients: %.2f req/s, TTFT p50 %.0f ms, %.1f tok/s, %d errors%n", c,
                    (double) level.get("requests_per_s"), (double) level.get("ttft_ms_p50"),
                    (double) level.get("output_tokens_per_s"), (int) level.get("errors"));
        }

        Map<String, Object> result = new LinkedHashMap<>();
        result.put("label", o.label());
        result.put("url", o.url());
        result.put("model", model);
        result.put("endpoint", o.endpoint());
        result.put("max_tokens", o.maxTokens());
        result.put("ignore_eos", o.ignoreEos());
        result.put("cache_prompt", !o.noCachePrompt());
        result.put("level_warmup", o.levelWarmup());
        result.put("requests_per_client", o.requestsPerClient());
        result.put("prompt_chars", o.prompt().length());
        result.put("warmup_text", firstText);
        result.put("started", Instant.now().toString());
        result.put("levels", levels);
        if (o.out() != null) {
            Path parent = o.out().toAbsolutePath().getParent();
            if (parent != null) Files.createDirectories(parent);
            Files.writeString(o.out(), toJson(result, "") + "\n");
        }
        System.out.print(markdown(o, model, levels));
    }

    static Map<String, Object> runLevel(HttpClient http, Options o, String model, int clients) throws Exception {
        CountDownLatch ready = new CountDownLatch(clients);
        CountDownLatch go = new CountDownLatch(1);
        List<Future<List<Sample>>> futures = new ArrayList<>();
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < clients; i++) {
                futures.add(pool.submit(() -> {
                    // Untimed: one short request per client, all at once, so each client holds a pooled
                    // connection before the clock starts. Without it the level opens C connections in one
                    // burst, and a server with a short listen backlog (cpp-httplib's is 5) overflows it: the
                    // kernel logs "Possible SYN flooding" and the handshakes wait out SYN retransmits (1 s, 3 s,
                    // ...), which would be timed as that server's TTFT.
                    if (o.levelWarmup()) request(http, o, model, 2);
                    ready.countDown();
                    go.await();
                    List<Sample> mine = new ArrayList<>();
                    for (int r = 0; r < o.requestsPerClient(); r++) mine.add(request(http, o, model));
                    return mine;
                }));
            }
            ready.await();
            long start = System.nanoTime();
            go.countDown();
            List<Sample> all = new ArrayList<>();
            for (Future<List<Sample>> f : futures) all.addAll(f.get());
            long wall = System.nanoTime() - start;
            return summarize(clients, all, wall);
        }
    }

    static Map<String, Object> summarize(int clients, List<Sample> all, long wallNanos) {
        List<Sample> ok = all.stream().filter(Sample::ok).toList();
        double wall = wallNanos / 1e9;
        long tokens = ok.stream().mapToLong(Sample::tokens).sum();
        double[] ttft = ok.stream().mapToDouble(s -> s.ttftNanos() / 1e6).sorted().toArray();
        double[] latency = ok.stream().mapToDouble(s -> s.totalNanos() / 1e6).sorted().toArray();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("clients", clients);
        m.put("requests", all.size());
        m.put("completed", ok.size());
        m.put("errors", all.size() - ok.size());
        m.put("wall_s", wall);
        m.put("requests_per_s", ok.size() / wall);
        m.put("ttft_ms_p50", percentile(ttft, 50));
        m.put("ttft_ms_p90", percentile(ttft, 90));
        m.put("ttft_ms_p99", percentile(ttft, 99));
        m.put("latency_ms_p50", percentile(latency, 50));
        m.put("latency_ms_p90", percentile(latency, 90));
        m.put("output_tokens", tokens);
        m.put("output_tokens_per_s", tokens / wall);
        m.put("tokens_per_request_min", ok.stream().mapToInt(Sample::tokens).min().orElse(0));
        m.put("tokens_per_request_max", ok.stream().mapToInt(Sample::tokens).max().orElse(0));
        m.put("text_events_per_request_mean", ok.stream().mapToInt(Sample::textEvents).average().orElse(Double.NaN));
        m.put("tokens_from_usage", !ok.isEmpty() && ok.stream().allMatch(Sample::tokensFromUsage));
        m.put("connection_retries", all.stream().filter(Sample::retried).count());
        m.put("error_messages", all.stream().filter(s -> !s.ok()).map(Sample::error).distinct().limit(5).toList());
        return m;
    }

    /** Nearest-rank percentile of sorted values; NaN when there are none. */
    static double percentile(double[] sorted, double p) {
        if (sorted.length == 0) return Double.NaN;
        int rank = (int) Math.ceil(p / 100.0 * sorted.length);
        return sorted[Math.max(0, Math.min(sorted.length - 1, rank - 1))];
    }

    static Sample request(HttpClient http, Options o, String model) {
        return request(http, o, model, o.maxTokens());
    }

    static Sample request(HttpClient http, Options o, String model, int maxTokens) {
        boolean chat = o.endpoint().equals("chat");
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("model", model);
        if (chat) {
            body.put("messages", List.of(Map.of("role", "user", "content", o.prompt())));
        } else {
            body.put("prompt", o.prompt());
        }
        body.put("max_tokens", maxTokens);
        body.put("temperature", 0);
        body.put("stream", true);
        body.put("stream_options", Map.of("include_usage", true));
        if (o.ignoreEos()) body.put("ignore_eos", true);
        if (o.noCachePrompt()) body.put("cache_prompt", false);
        HttpRequest req = HttpRequest.newBuilder(URI.create(o.url() + (chat ? "/v1/chat/completions" : "/v1/completions")))
                .timeout(Duration.ofSeconds(o.timeoutSeconds()))
                .header("Content-Type", "application/json")
                .header("Accept", "text/event-stream")
                .POST(HttpRequest.BodyPublishers.ofString(toJson(body, null)))
                .build();
        long t0 = System.nanoTime();
        long ttft = -1;
        int textEvents = 0;
        int usageTokens = -1;
        boolean done = false;
        StringBuilder text = new StringBuilder();
        boolean retried = false;
        try {
            HttpResponse<InputStream> resp;
            try {
                resp = http.send(req, HttpResponse.BodyHandlers.ofInputStream());
            } catch (IOException e) {
                // A pooled keep-alive connection the server closed meanwhile (cpp-httplib, llama-server's HTTP
                // layer, closes idle ones after 5 s) fails before a byte of the answer; the request is sent again
                // once, on a fresh connection, and counted. TTFT still runs from the first send.
                retried = true;
                resp = http.send(req, HttpResponse.BodyHandlers.ofInputStream());
            }
            try (BufferedReader in = new BufferedReader(new InputStreamReader(resp.body(), StandardCharsets.UTF_8))) {
                if (resp.statusCode() != 200) {
                    String msg = in.lines().limit(5).reduce("", (a, b) -> a + b);
                    return fail("HTTP " + resp.statusCode() + ": " + abbreviate(msg), t0);
                }
                String line;
                while ((line = in.readLine()) != null) {
                    if (!line.startsWith("data:")) continue; // blank separators, comments, event: lines
                    String data = line.substring(5).strip();
                    if (data.equals("[DONE]")) {
                        done = true;
                        break;
                    }
                    Object event = new Json(data).value();
                    if (!(event instanceof Map<?, ?> ev)) continue;
                    if (ev.get("error") != null) return fail("error event: " + abbreviate(data), t0);
                    String piece = pieceOf(ev, chat);
                    if (piece != null && !piece.isEmpty()) {
                        if (ttft < 0) ttft = System.nanoTime() - t0;
                        textEvents++;
                        text.append(piece);
                    }
                    if (ev.get("usage") instanceof Map<?, ?> usage && usage.get("completion_tokens") instanceof Number n) {
                        usageTokens = n.intValue();
                    }
                }
            }
        } catch (IOException | InterruptedException | RuntimeException e) {
            return fail(e.getClass().getSimpleName() + ": " + e.getMessage(), t0);
        }
        long total = System.nanoTime() - t0;
        if (!done) return fail("stream ended without [DONE]", t0);
        if (ttft < 0) return fail("no event with text", t0);
        boolean fromUsage = usageTokens >= 0;
        return new Sample(true, null, ttft, total, fromUsage ? usageTokens : textEvents, fromUsage, textEvents,
                text.toString(), retried);
    }

    static String pieceOf(Map<?, ?> event, boolean chat) {
        if (!(event.get("choices") instanceof List<?> choices) || choices.isEmpty()) return null;
        if (!(choices.get(0) instanceof Map<?, ?> choice)) return null;
        if (chat) {
            return choice.get("delta") instanceof Map<?, ?> delta && delta.get("content") instanceof String s ? s : null;
        }
        return choice.get("text") instanceof String s ? s : null;
    }

    static Sample fail(String error, long t0) {
        return new Sample(false, error, -1, System.nanoTime() - t0, 0, false, 0, "", false);
    }

    static String firstModel(HttpClient http, String url) throws Exception {
        HttpResponse<String> resp = http.send(HttpRequest.newBuilder(URI.create(url + "/v1/models"))
                .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
        if (resp.statusCode() == 200 && new Json(resp.body()).value() instanceof Map<?, ?> m
                && m.get("data") instanceof List<?> data && !data.isEmpty()
                && data.get(0) instanceof Map<?, ?> first && first.get("id") instanceof String id) {
            return id;
        }
        System.err.println("loadgen: GET /v1/models gave no model id (status " + resp.statusCode() + "); pass --model");
        System.exit(1);
        return null;
    }

    static String markdown(Options o, String model, List<Map<String, Object>> levels) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%s%s, %s, max_tokens %d, %d requests per client%n%n",
                o.label() == null ? "" : o.label() + ": ", model, o.endpoint(), o.maxTokens(), o.requestsPerClient()));
        sb.append("| clients | requests | errors | wall s | requests/s | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | output tok/s | tokens/request |\n");
        sb.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Map<String, Object> l : levels) {
            sb.append(String.format(Locale.ROOT, "| %d | %d | %d | %.2f | %.2f | %.0f | %.0f | %.0f | %.1f | %d–%d |%n",
                    l.get("clients"), l.get("requests"), l.get("errors"), l.get("wall_s"), l.get("requests_per_s"),
                    l.get("ttft_ms_p50"), l.get("ttft_ms_p90"), l.get("ttft_ms_p99"), l.get("output_tokens_per_s"),
                    l.get("tokens_per_request_min"), l.get("tokens_per_request_max")));
        }
        return sb.toString();
    }

    static Options parse(String[] args) throws IOException {
        String url = null, prompt = null, endpoint = "completions", model = null, label = null;
        int[] clients = {1, 8, 32};
        int perClient = 4, maxTokens = 32, warmup = 1, timeout = 600;
        boolean ignoreEos = false, noCachePrompt = false, levelWarmup = true;
        Path out = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--url" -> url = args[++i].replaceAll("/+$", "");
                case "--clients" -> clients = Arrays.stream(args[++i].split(",")).mapToInt(Integer::parseInt).toArray();
                case "--requests-per-client" -> perClient = Integer.parseInt(args[++i]);
                case "--max-tokens" -> maxTokens = Integer.parseInt(args[++i]);
                case "--prompt" -> prompt = args[++i];
                case "--prompt-file" -> prompt = Files.readString(Path.of(args[++i]));
                case "--endpoint" -> endpoint = args[++i];
                case "--model" -> model = args[++i];
                case "--ignore-eos" -> ignoreEos = true;
                case "--no-cache-prompt" -> noCachePrompt = true;
                case "--no-level-warmup" -> levelWarmup = false;
                case "--warmup" -> warmup = Integer.parseInt(args[++i]);
                case "--label" -> label = args[++i];
                case "--out" -> out = Path.of(args[++i]);
                case "--timeout-s" -> timeout = Integer.parseInt(args[++i]);
                default -> usage("unknown option " + a);
            }
        }
        if (url == null) usage("--url is required");
        if (prompt == null) usage("--prompt or --prompt-file is required");
        if (!endpoint.equals("completions") && !endpoint.equals("chat")) usage("--endpoint is completions or chat");
        return new Options(url, clients, perClient, maxTokens, prompt, endpoint, model, ignoreEos, noCachePrompt,
                levelWarmup, warmup, label, out, timeout);
    }

    static void usage(String why) {
        System.err.println("loadgen: " + why);
        System.err.println("usage: java LoadGen.java --url URL (--prompt TEXT | --prompt-file F) [--clients 1,8,32]"
                + " [--requests-per-client 4] [--max-tokens 32] [--endpoint completions|chat] [--model ID]"
                + " [--ignore-eos] [--no-cache-prompt] [--no-level-warmup] [--warmup 1] [--label NAME] [--out results.json] [--timeout-s 600]");
        System.exit(2);
    }

    static String abbreviate(String s) {
        return s.length() <= 200 ? s : s.substring(0, 200) + "...";
    }

    static String quote(String s) {
        return '"' + abbreviate(s).replace("\n", "\\n") + '"';
    }

    // ---- JSON: a writer for maps, lists, strings, numbers, booleans and null; a reader for server events ----

    static String toJson(Object v, String indent) {
        StringBuilder sb = new StringBuilder();
        write(sb, v, indent);
        return sb.toString();
    }

    private static void write(StringBuilder sb, Object v, String indent) {
        String nl = indent == null ? "" : "\n";
        String inner = indent == null ? null : indent + "  ";
        String pad = inner == null ? "" : inner;
        switch (v) {
            case null -> sb.append("null");
            case String s -> string(sb, s);
            case Boolean b -> sb.append(b);
            case Double d -> sb.append(d.isNaN() || d.isInfinite() ? "null" : String.format(Locale.ROOT, "%.4f", d));
            case Number n -> sb.append(n);
            case Map<?, ?> m -> {
                sb.append('{').append(nl);
                int k = 0;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    sb.append(pad);
                    string(sb, e.getKey().toString());
                    sb.append(indent == null ? ":" : ": ");
                    write(sb, e.getValue(), inner);
                    if (++k < m.size()) sb.append(',');
                    sb.append(nl);
                }
                sb.append(indent == null ? "" : indent).append('}');
            }
            case List<?> l -> {
                sb.append('[').append(nl);
                for (int k = 0; k < l.size(); k++) {
                    sb.append(pad);
                    write(sb, l.get(k), inner);
                    if (k + 1 < l.size()) sb.append(',');
                    sb.append(nl);
                }
                sb.append(indent == null ? "" : indent).append(']');
            }
            default -> string(sb, v.toString());
        }
    }

    private static void string(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }

    /** A small recursive-descent JSON reader: objects become LinkedHashMap, arrays List, numbers Double or Long. */
    static final class Json {
        private final String s;
        private int i;

        Json(String s) {
            this.s = s;
        }

        Object value() {
            skip();
            if (i >= s.length()) throw new IllegalArgumentException("JSON ends early");
            char c = s.charAt(i);
            return switch (c) {
                case '{' -> object();
                case '[' -> array();
                case '"' -> str();
                case 't' -> literal("true", Boolean.TRUE);
                case 'f' -> literal("false", Boolean.FALSE);
                case 'n' -> literal("null", null);
                default -> number();
            };
        }

        private Map<String, Object> object() {
            Map<String, Object> m = new LinkedHashMap<>();
            i++;
            skip();
            if (s.charAt(i) == '}') {
                i++;
                return m;
            }
            while (true) {
                skip();
                String k = str();
                skip();
                expect(':');
                m.put(k, value());
                skip();
                if (s.charAt(i) == ',') {
                    i++;
                    continue;
                }
                expect('}');
                return m;
            }
        }

        private List<Object> array() {
            List<Object> l = new ArrayList<>();
            i++;
            skip();
            if (s.charAt(i) == ']') {
                i++;
                return l;
            }
            while (true) {
                l.add(value());
                skip();
                if (s.charAt(i) == ',') {
                    i++;
                    continue;
                }
                expect(']');
                return l;
            }
        }

        private String str() {
            expect('"');
            StringBuilder sb = new StringBuilder();
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') return sb.toString();
                if (c != '\\') {
                    sb.append(c);
                    continue;
                }
                char e = s.charAt(i++);
                switch (e) {
                    case 'n' -> sb.append('\n');
                    case 't' -> sb.append('\t');
                    case 'r' -> sb.append('\r');
                    case 'b' -> sb.append('\b');
                    case 'f' -> sb.append('\f');
                    case 'u' -> {
                        sb.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                    }
                    default -> sb.append(e); // \" \\ \/
                }
            }
        }

        private Object number() {
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            String n = s.substring(start, i);
            if (n.isEmpty()) throw new IllegalArgumentException("unexpected '" + s.charAt(i) + "' at " + i);
            return n.contains(".") || n.contains("e") || n.contains("E") ? (Object) Double.parseDouble(n)
                    : (Object) Long.parseLong(n);
        }

        private Object literal(String word, Object v) {
            if (!s.startsWith(word, i)) throw new IllegalArgumentException("bad literal at " + i);
            i += word.length();
            return v;
        }

        private void expect(char c) {
            if (i >= s.length() || s.charAt(i) != c) throw new IllegalArgumentException("expected '" + c + "' at " + i);
            i++;
        }

        private void skip() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++;
        }
    }
}
