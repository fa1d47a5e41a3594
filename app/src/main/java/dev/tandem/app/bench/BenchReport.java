package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A Markdown report with PNG charts of one {@code ./tandem bench} result JSON, written beside it:
 * {@code <base>.md} and, as the suites present call for them, {@code <base>-decode.png},
 * {@code <base>-prefill.png}, {@code <base>-batch.png} and {@code <base>-rows.png}, where
 * {@code <base>} is the JSON file's name without {@code .json}.
 *
 * <p>The report names the machine, JDK, date, commit and exact command, then gives every figure of
 * every section as {@code median (q1–q3)} with its repetition count. The box plots draw the same
 * median and quartiles as the tables (taken from the JSON, not recomputed), whiskers to the furthest
 * repetition within 1.5 IQR of the box, and every repetition beyond that as a point.
 *
 * <p>Charts render off-screen with AWT in headless mode: loading this class sets
 * {@code java.awt.headless=true} (before any AWT use in a CLI run), so reports can be written on
 * servers without a display. Everything is rendered in memory first; each file is
 * then written to a temporary file in the same folder and renamed, and when any write fails the files
 * of this report that were already in place are removed again, so a failure never leaves a half
 * written or half complete report.
 */
public final class BenchReport {

    /** Size of every chart, in pixels. */
    public static final int CHART_WIDTH = 800;
    public static final int CHART_HEIGHT = 450;

    static {
        // Charts render into images only; never look for a display (AWT reads this once, on first use).
        System.setProperty("java.awt.headless", "true");
    }

    private static final List<String> SECTIONS = List.of("decode", "prefill", "batch", "methods", "engine", "soak", "attention",
            "diffusion", "views", "rag");

    private BenchReport() {
    }

    /** Reads a result JSON and writes its report beside it; see {@link #write(JsonNode, Path)}. */
    public static List<Path> write(Path jsonFile) throws IOException {
        JsonNode result;
        try {
            result = new ObjectMapper().readTree(jsonFile.toFile());
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(jsonFile + " is not valid JSON" + (e.getLocation() != null && e.getLocation().getLineNr() > 0
                    ? " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")" : "") + ".", e);
        }
        return write(result, jsonFile);
    }

    /**
     * Writes the Markdown report of {@code result} (what {@code ./tandem bench} wrote to
     * {@code jsonFile}) and its charts beside {@code jsonFile}.
     *
     * @return the files written, the charts first and the Markdown last
     * @throws IllegalArgumentException when {@code result} is not a benchmark result this class knows
     *                                  (no {@code suite}, an unknown suite, a figure missing or malformed);
     *                                  nothing is written then
     * @throws IOException              when a file cannot be written; none of this report's files is left
     */
    public static List<Path> write(JsonNode result, Path jsonFile) throws IOException {
        Path dir = jsonFile.toAbsolutePath().getParent();
        String base = baseName(jsonFile);
        Report report = render(result, base);
        List<Output> outputs = new ArrayList<>();
        for (Map.Entry<String, byte[]> chart : report.charts.entrySet()) {
            outputs.add(new Output(dir.resolve(chart.getKey()), chart.getValue()));
        }
        outputs.add(new Output(dir.resolve(base + ".md"), report.markdown.getBytes(StandardCharsets.UTF_8)));
        return writeAll(dir, outputs);
    }

    static String baseName(Path jsonFile) {
        String name = jsonFile.getFileName().toString();
        return name.endsWith(".json") && name.length() > ".json".length()
                ? name.substring(0, name.length() - ".json".length()) : name;
    }

    // ---------------------------------------------------------------- rendering

    private record Output(Path file, byte[] bytes) {
    }

    /** The Markdown text and the charts (file name to PNG bytes), in memory. */
    record Report(String markdown, Map<String, byte[]> charts) {
    }

    static Report render(JsonNode result, String base) {
        if (result == null || !result.isObject()) {
            throw new IllegalArgumentException("This is not a ./tandem bench result: that is a JSON object with a "
                    + "\"suite\" field (JMH results, for one, are not).");
        }
        JsonNode suiteNode = result.get("suite");
        if (suiteNode == null || !suiteNode.isTextual()) {
            throw new IllegalArgumentException("The benchmark result has no \"suite\" field, so it is not a result "
                    + "./tandem bench wrote (expected one of decode, prefill, batch, methods, engine, soak, attention, diffusion, views, rag or all).");
        }
        String suite = suiteNode.asText();
        Map<String, JsonNode> sections = new LinkedHashMap<>();
        if (suite.equals("all")) {
            for (String s : SECTIONS) {
                JsonNode n = result.get(s);
                if (n != null && n.isObject()) {
                    sections.put(s, n);
                }
            }
            if (sections.isEmpty()) {
                throw new IllegalArgumentException("The benchmark result of suite \"all\" holds none of the sections "
                        + "decode, prefill or batch.");
            }
        } else if (SECTIONS.contains(suite)) {
            sections.put(suite, result);
        } else {
            throw new IllegalArgumentException("Unknown benchmark suite \"" + suite
                    + "\" in the result (expected decode, prefill, batch, methods, engine, soak, attention, diffusion, views, rag or all).");
        }

        Md md = new Md();
        Map<String, byte[]> charts = new LinkedHashMap<>();
        JsonNode first = sections.values().iterator().next();
        String model = text(first, "model");
        String dtype = text(first, "dtype");
        md.line("# Benchmark: " + suite + (model == null ? "" : " — " + model) + (dtype == null ? "" : " (" + dtype + ")"));
        md.blank();
        header(md, result);
        String subtitle = chartSubtitle(result);
        boolean nested = suite.equals("all");
        for (Map.Entry<String, JsonNode> s : sections.entrySet()) {
            String where = nested ? s.getKey() + "." : "";
            switch (s.getKey()) {
                case "decode" -> decode(md, charts, s.getValue(), base, subtitle, where);
                case "prefill" -> prefill(md, charts, s.getValue(), base, subtitle, where);
                case "batch" -> batch(md, charts, s.getValue(), base, subtitle, where);
                case "methods" -> methods(md, charts, s.getValue(), base, subtitle, where);
                case "engine" -> engine(md, s.getValue(), where);
                case "soak" -> soak(md, s.getValue());
                case "attention" -> attention(md, s.getValue(), where);
                case "diffusion" -> diffusion(md, s.getValue(), where);
                case "views" -> views(md, charts, s.getValue(), base, subtitle, where);
                case "rag" -> rag(md, s.getValue(), where);
                default -> throw new AssertionError(s.getKey());
            }
        }
        return new Report(md.toString(), charts);
    }

    private static void header(Md md, JsonNode r) {
        JsonNode m = r.path("machine");
        List<String> machine = new ArrayList<>();
        addIf(machine, text(m, "cpu"));
        if (m.path("cores").isNumber()) {
            machine.add(m.get("cores").asInt() + " cores");
        }
        if (m.path("memory_bytes").isNumber() && m.get("memory_bytes").asLong() > 0) {
            machine.add(bytes(m.get("memory_bytes").asLong()) + " memory");
        }
        if (m.path("last_level_cache_bytes").isNumber() && m.get("last_level_cache_bytes").asLong() > 0) {
            machine.add(bytes(m.get("last_level_cache_bytes").asLong()) + " last-level cache");
        }
        addIf(machine, text(m, "os"));
        md.line("| | |");
        md.line("| --- | --- |");
        md.row("machine", machine.isEmpty() ? "not recorded" : String.join(", ", machine));
        md.row("JDK", orElse(text(m, "jdk"), "not recorded"));
        md.row("date", orElse(text(r, "date"), "not recorded"));
        md.row("commit", orElse(text(r, "commit"), "not recorded"));
        if (text(r, "model_dir") != null) {
            md.row("model directory", text(r, "model_dir"));
        }
        md.blank();
        String command = text(r, "command");
        if (command != null) {
            md.line("Command:");
            md.blank();
            String fence = command.contains("```") ? "~~~~" : "```";
            md.line(fence + "sh");
            md.line(command);
            md.line(fence);
            md.blank();
        }
        md.line("Figures are `median (q1–q3)` over the repetitions counted in each table's last column; "
                + "the charts draw the same median and quartiles, whiskers to the furthest repetition within "
                + "1.5 IQR of the box and a dot for every repetition.");
        md.blank();
    }

    private static String chartSubtitle(JsonNode r) {
        List<String> parts = new ArrayList<>();
        JsonNode m = r.path("machine");
        addIf(parts, text(m, "cpu"));
        if (m.path("cores").isNumber()) {
            parts.add(m.get("cores").asInt() + " cores");
        }
        String date = text(r, "date");
        if (date != null) {
            parts.add(date.length() >= 10 ? date.substring(0, 10) : date);
        }
        addIf(parts, text(r, "commit"));
        return String.join(" · ", parts);
    }

    private static void modelLine(Md md, JsonNode s) {
        List<String> parts = new ArrayList<>();
        String model = text(s, "model");
        String dtype = text(s, "dtype");
        if (model != null) {
            parts.add("`" + model + "`" + (dtype == null ? "" : " in " + dtype));
        }
        if (s.path("parameters").isNumber()) {
            parts.add(String.format(Locale.ROOT, "%,d parameters", s.get("parameters").asLong()));
        }
        if (s.path("weight_bytes_per_token").isNumber()) {
            parts.add(String.format(Locale.ROOT, "%.1f MB of weights read per decoded token",
                    s.get("weight_bytes_per_token").asDouble() / 1e6));
        }
        if (!parts.isEmpty()) {
            md.line("Model: " + String.join(", ", parts) + ".");
            md.blank();
        }
        JsonNode options = s.path("options");
        if (options.isObject() && !options.isEmpty()) {
            List<String> o = new ArrayList<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = options.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String v = e.getValue().isArray() ? joinArray(e.getValue()) : e.getValue().asText();
                o.add("`" + e.getKey() + "` " + v);
            }
            md.line("Options: " + String.join(", ", o) + ".");
            md.blank();
        }
    }

    private static void decode(Md md, Map<String, byte[]> charts, JsonNode s, String base, String subtitle, String where) {
        md.line("## Decode");
        md.blank();
        modelLine(md, s);
        JsonNode runs = array(s, "runs", where);
        Boxes boxes = new Boxes();
        List<String> sentences = new ArrayList<>();
        md.line("| threads | decode tok/s | prefill tok/s | weight read GB/s | memory read GB/s, best pass "
                + "| memory read GB/s, median pass | fraction of roofline | repetitions |");
        md.line("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (int i = 0; i < runs.size(); i++) {
            JsonNode run = runs.get(i);
            String at = where + "runs[" + i + "].";
            int threads = integer(run, "threads", at);
            Fig decode = fig(run, "decode_tokens_per_s", at);
            Fig prefill = run.has("prefill_tokens_per_s") ? fig(run, "prefill_tokens_per_s", at) : null;
            Fig weights = fig(run, "weight_read_bytes_per_s", at);
            JsonNode bw = run.path("memory_read_bytes_per_s");
            double best = number(bw, "best", at + "memory_read_bytes_per_s.");
            double bwMedian = number(bw, "median", at + "memory_read_bytes_per_s.");
            int passes = bw.path("passes").isArray() ? bw.get("passes").size() : 0;
            double fraction = run.path("fraction_of_memory_bandwidth").isNumber()
                    ? run.get("fraction_of_memory_bandwidth").asDouble() : weights.median / best;
            md.line("| " + threads + " | " + decode.format(1) + " | " + (prefill == null ? "–" : prefill.format(1))
                    + " | " + weights.format(1e-9) + " | " + fixed(best / 1e9, 2) + " | " + fixed(bwMedian / 1e9, 2)
                    + " | " + fixed(fraction, 2) + " | " + counts(decode, prefill, weights)
                    + (passes > 0 ? " (bandwidth: " + passes + " passes)" : "") + " |");
            boxes.add(decode, Integer.toString(threads));
            sentences.add(String.format(Locale.ROOT,
                    "With %s, decode reads weights at %s GB/s, %s of the %s GB/s measured with %s in the same run "
                            + "(best of %s; the median pass read %s GB/s).",
                    threadsWord(threads), fixed(weights.median / 1e9, 2), fixed(fraction, 2), fixed(best / 1e9, 2),
                    threadsWord(threads), passes > 0 ? passes + " passes" : "the passes", fixed(bwMedian / 1e9, 2)));
        }
        md.blank();
        for (String sentence : sentences) {
            md.line(sentence);
            md.blank();
        }
        md.line("The fraction of the roofline is the median weight-read rate (decode tokens/s × weight bytes per "
                + "token) over the best memory-read pass with the same threads.");
        md.blank();
        if (s.path("weights_fit_in_last_level_cache").asBoolean(false)) {
            md.line("**Note:** the weights fit in the last-level cache, so decode is not bound by memory bandwidth "
                    + "here and fractions above 1 are possible.");
            md.blank();
        }
        if (runs.size() > 0) {
            String file = base + "-decode.png";
            chart(md, charts, file, "decode tokens/s by thread count", () -> BenchCharts.boxChart(title(s, "decode tokens/s by thread count"),
                    subtitle, "threads", "decode tokens/s (single sequence)", boxes));
        }
        memory(md, s);
    }

    private static void prefill(Md md, Map<String, byte[]> charts, JsonNode s, String base, String subtitle, String where) {
        md.line("## Prefill");
        md.blank();
        modelLine(md, s);
        JsonNode figures = array(s, "prefill", where);
        Boxes boxes = new Boxes();
        md.line("| threads | prompt tokens | prefill tok/s | time to first token ms | repetitions |");
        md.line("| ---: | ---: | ---: | ---: | ---: |");
        Set<Integer> threadCounts = new LinkedHashSet<>();
        for (int i = 0; i < figures.size(); i++) {
            threadCounts.add(integer(figures.get(i), "threads", where + "prefill[" + i + "]."));
        }
        for (int i = 0; i < figures.size(); i++) {
            JsonNode f = figures.get(i);
            String at = where + "prefill[" + i + "].";
            int threads = integer(f, "threads", at);
            int prompt = integer(f, "prompt_tokens", at);
            Fig tps = fig(f, "prefill_tokens_per_s", at);
            Fig ttft = f.has("time_to_first_token_ms") ? fig(f, "time_to_first_token_ms", at) : null;
            md.line("| " + threads + " | " + prompt + " | " + tps.format(1) + " | "
                    + (ttft == null ? "–" : ttft.format(1)) + " | " + counts(tps, ttft) + " |");
            boxes.add(tps, threadCounts.size() == 1 ? Integer.toString(prompt) : prompt + ", " + threadsWord(threads));
        }
        md.blank();
        if (figures.size() > 0) {
            String file = base + "-prefill.png";
            chart(md, charts, file, "prefill tokens/s by prompt length", () -> BenchCharts.boxChart(title(s, "prefill tokens/s by prompt length"),
                    subtitle, threadCounts.size() == 1 ? "prompt tokens" : "prompt tokens, threads", "prefill tokens/s", boxes));
        }
        memory(md, s);
    }

    /** The decoding-method comparison: one row per method, setting, draft and mode; speeds relative to plain. */
    private static void methods(Md md, Map<String, byte[]> charts, JsonNode s, String base, String subtitle, String where) {
        md.line("## Decoding methods");
        md.blank();
        String target = text(s, "target");
        if (target != null) {
            String backend = text(s, "backend");
            md.line("Target: `" + target + "`" + (backend != null ? " on backend " + backend : "") + ". Speeds are relative to plain decoding of the target in the same repetition."
                    + " A method's ceiling is 1 / (target passes per token): its speed if a verification pass cost what a"
                    + " one-row pass costs and drafting were free; \"of ceiling\" is its median relative speed over that.");
            md.blank();
        }
        JsonNode methods = array(s, "methods", where);
        md.line("| method | setting | draft | mode | acceptance | accepted / verification | target passes / token "
                + "| large model called / changed | tok/s | relative to plain | ceiling | of ceiling "
                + "| pearl ÷ speculative: same cores / same target threads | repetitions |");
        md.line("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        Boxes boxes = new Boxes();
        for (int i = 0; i < methods.size(); i++) {
            JsonNode m = methods.get(i);
            String at = where + "methods[" + i + "].";
            Fig tps = fig(m, "tokens_per_s", at);
            Fig rel = fig(m, "relative_tokens_per_s", at);
            String vsSpeculative = m.path("relative_to_speculative").isObject()
                    ? fig(m, "relative_to_speculative", at).format(1) : "";
            if (m.path("relative_to_speculative_on_pearl_target_threads").isObject()) {
                vsSpeculative += " / " + fig(m, "relative_to_speculative_on_pearl_target_threads", at).format(1);
            }
            JsonNode c = m.path("collab");
            String collab = c.isObject()
                    ? fixed(100 * c.path("call_frequency").asDouble(), 1) + "% / " + fixed(100 * c.path("change_frequency").asDouble(), 1) + "%"
                    : "";
            String label = orElse(text(m, "method"), "?") + (text(m, "setting") == null ? "" : " " + text(m, "setting"))
                    + (text(m, "draft") == null ? "" : " ← " + text(m, "draft")) + ", " + orElse(text(m, "mode"), "?");
            md.line("| " + orElse(text(m, "method"), "?") + " | " + orElse(text(m, "setting"), "") + " | "
                    + orElse(text(m, "draft"), "") + " | " + orElse(text(m, "mode"), "") + " | "
                    + optionalFixed(m, "acceptance_rate", 3) + " | " + optionalFixed(m, "mean_accepted_length", 2) + " | "
                    + optionalFixed(m, "target_passes_per_token", 3) + " | " + collab + " | " + tps.format(1) + " | "
                    + rel.format(1) + " | " + ceiling(m, rel) + " | " + vsSpeculative + " | " + counts(tps) + " |");
            boxes.add(rel, label);
        }
        md.blank();
        if (methods.size() > 0) {
            String file = base + "-methods.png";
            chart(md, charts, file, "tokens/s relative to plain decoding", () -> BenchCharts.boxChart(title(s, "tokens/s relative to plain decoding"),
                    subtitle, "method", "tokens/s ÷ plain's in the same repetition", boxes));
        }
    }

    /** "ceiling | of ceiling" cells: 1 / target passes per token and the median relative speed over it. */
    private static String ceiling(JsonNode m, Fig rel) {
        JsonNode passes = m.path("target_passes_per_token");
        if (!passes.isNumber() || !(passes.asDouble() > 0)) {
            return " | ";
        }
        double ceiling = 1 / passes.asDouble();
        return fixed(ceiling, 2) + " | " + fixed(rel.median / ceiling, 2);
    }

    private static String optionalFixed(JsonNode n, String field, int decimals) {
        JsonNode v = n.path(field);
        return v.isNumber() ? fixed(v.asDouble(), decimals) : "";
    }

    private static void soak(Md md, JsonNode s) {
        md.line("## Soak");
        md.blank();
        md.line(s.path("requests").asInt() + " generations (after a warm-up over a pool of " + s.path("pool_size").asInt()
                + " requests: every method, greedy and sampled, mixed lengths) from " + s.path("clients").asInt()
                + " client threads through one Engine, " + s.path("cancelled").asLong() + " cancelled after their first token; "
                + String.format(Locale.ROOT, "%.1f", s.path("seconds").asDouble()) + " s. Target " + s.path("model").asText()
                + ", draft " + s.path("draft").asText() + ", " + s.path("threads").asInt() + " threads.");
        md.blank();
        md.line("| check | figure |");
        md.line("| --- | --- |");
        md.line("| KV blocks in use at the end | " + s.path("end_used_blocks").asInt() + " |");
        md.line("| backend activation bytes after warm-up / at the end | " + s.path("warm_backend_bytes").asLong() + " / "
                + s.path("end_backend_bytes").asLong() + " |");
        md.line("| resident memory outside the Java heap at the second half's start / its maximum | "
                + mib(s.path("second_half_start_outside_heap_bytes").asLong()) + " / "
                + mib(s.path("second_half_max_outside_heap_bytes").asLong()) + " |");
        md.line("| resident memory, the run's peak | " + mib(s.path("peak_resident_bytes").asLong()) + " |");
        md.line("| result | " + (s.path("passed").asBoolean() ? "passed" : "**failed**") + " |");
        md.blank();
        JsonNode failures = s.path("failures");
        for (int i = 0; i < failures.size() && i < 20; i++) {
            md.line("- " + failures.get(i).asText());
        }
        if (failures.size() > 0) {
            md.blank();
        }
    }

    private static String mib(long bytes) {
        return bytes < 0 ? "unknown" : String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }

    private static void engine(Md md, JsonNode s, String where) {
        md.line("## Engine throughput by method and concurrency");
        md.blank();
        md.line("Target " + s.path("model").asText() + " (" + s.path("dtype").asText() + "), draft " + s.path("draft").asText()
                + "; " + s.path("options").path("threads").asInt() + " threads, " + s.path("options").path("max_tokens").asInt()
                + " tokens per request, greedy, γ = " + s.path("options").path("draft_length").asInt()
                + ". Tokens/s of all requests together; the ratio is to plain decoding at the same concurrency in the same repetition.");
        md.blank();
        md.line("| method | requests at once | tok/s (all requests) | × plain | repetitions |");
        md.line("| --- | ---: | ---: | ---: | ---: |");
        JsonNode figures = array(s, "figures", where);
        for (int i = 0; i < figures.size(); i++) {
            JsonNode f = figures.get(i);
            String at = where + "figures[" + i + "].";
            Fig tps = fig(f, "tokens_per_s", at);
            Fig rel = fig(f, "relative_to_plain", at);
            md.line("| " + f.path("method").asText() + " | " + integer(f, "concurrency", at) + " | " + tps.format(1) + " | "
                    + rel.format(1) + " | " + counts(tps) + " |");
        }
        md.blank();
    }

    private static void attention(Md md, JsonNode s, String where) {
        md.line("## Paged attention, one decode row per sequence");
        md.blank();
        md.line("Backend " + s.path("backend").asText() + "; " + s.path("heads").asInt() + " heads over " + s.path("kv_heads").asInt()
                + " KV heads of " + s.path("head_dim").asInt() + ", " + s.path("options").path("kv_dtype").asText() + " KV in blocks of "
                + s.path("options").path("block_size").asInt() + " (shuffled), " + s.path("options").path("batch").asInt()
                + " row(s) per call. The fraction is of the memory bandwidth the same backend measured in the same run ("
                + String.format(Locale.ROOT, "%.2f", s.path("memory_read_bytes_per_s").path("best").asDouble() / 1e9) + " GB/s, best pass).");
        md.blank();
        md.line("| context | µs per call | KV GB/s | fraction of bandwidth | repetitions |");
        md.line("| ---: | ---: | ---: | ---: | ---: |");
        JsonNode points = array(s, "contexts", where);
        for (int i = 0; i < points.size(); i++) {
            JsonNode p = points.get(i);
            String at = where + "contexts[" + i + "].";
            Fig seconds = fig(p, "seconds_per_call", at);
            Fig rate = fig(p, "kv_bytes_per_s", at);
            md.line("| " + integer(p, "context", at) + " | " + String.format(Locale.ROOT, "%.1f", seconds.median() * 1e6) + " | "
                    + String.format(Locale.ROOT, "%.2f", rate.median() / 1e9) + " | "
                    + String.format(Locale.ROOT, "%.2f", p.path("fraction_of_memory_bandwidth").asDouble()) + " | " + counts(rate) + " |");
        }
        md.blank();
    }

    private static void views(Md md, Map<String, byte[]> charts, JsonNode s, String base, String subtitle, String where) {
        md.line("## Several views or hypotheses per token");
        md.blank();
        JsonNode o = s.path("options");
        md.line("Model `" + s.path("model").asText() + "` with " + s.path("other_models").toString() + " on " + s.path("backend").asText()
                + ", greedy, " + o.path("prompts").size() + " prompts × " + o.path("max_tokens").asInt() + " tokens. Cost per token: "
                + "wall time per generated token over plain greedy decoding's in the same repetition (beams: per token of the best "
                + "hypothesis). Passes per token are exact counts: of the model (one pass holds all of a request's rows for it) "
                + "and of the other models (amateur, tuned and base, or a draft).");
        md.blank();
        md.line("| method | setting | model passes / token | other passes / token | tok/s | cost per token vs plain | repetitions |");
        md.line("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
        JsonNode figures = array(s, "figures", where);
        Boxes boxes = new Boxes();
        for (int i = 0; i < figures.size(); i++) {
            JsonNode f = figures.get(i);
            String at = where + "figures[" + i + "].";
            Fig rate = fig(f, "tokens_per_s", at);
            Fig cost = fig(f, "cost_per_token_relative_to_plain", at);
            md.line("| " + f.path("method").asText() + " | " + f.path("setting").asText() + " | "
                    + fixed(f.path("model_passes_per_token").asDouble(), 3) + " | " + fixed(f.path("other_passes_per_token").asDouble(), 3)
                    + " | " + rate.format(1) + " | " + cost.format(1) + " | " + counts(rate) + " |");
            boxes.add(cost, f.path("method").asText());
        }
        md.blank();
        if (figures.size() > 0) {
            String file = base + "-views.png";
            chart(md, charts, file, "cost per token relative to plain greedy", () -> BenchCharts.boxChart(
                    title(s, "cost per token relative to plain greedy"), subtitle, "method", "time per token ÷ plain's", boxes));
        }
    }

    private static void rag(Md md, JsonNode s, String where) {
        md.line("## Time to first token over retrieved passages");
        md.blank();
        JsonNode o = s.path("options");
        md.line("Model `" + s.path("model").asText() + "` (" + s.path("dtype").asText() + "), " + o.path("threads").asInt() + " threads: "
                + o.path("passages").asInt() + " passages of " + o.path("passage_tokens").asInt() + " tokens and a "
                + o.path("question_tokens").asInt() + "-token question, " + s.path("tokens_attended").asInt() + " tokens attended. "
                + "The three ways alternate within each repetition: a full causal prefill of everything (plain decoding with the "
                + "passages in the prompt); `--method rag` with the passages in the passage cache (the question's prefill alone); "
                + "`--method rag` with an empty cache (the passages computed as independent segments in the request).");
        md.blank();
        md.line("| way | time to first token (ms) | repetitions |");
        md.line("| --- | ---: | ---: |");
        Fig full = fig(s, "full_prefill_ttft_ms", where);
        Fig cached = fig(s, "rag_cached_ttft_ms", where);
        Fig cold = fig(s, "rag_cold_ttft_ms", where);
        md.line("| full prefill | " + full.format(1) + " | " + counts(full) + " |");
        md.line("| rag, passages cached | " + cached.format(1) + " | " + counts(cached) + " |");
        md.line("| rag, passages computed in the request | " + cold.format(1) + " | " + counts(cold) + " |");
        md.blank();
        Fig ratio = fig(s, "full_over_cached", where);
        md.line("Full prefill over cached, per repetition: " + ratio.format(1) + ".");
        md.blank();
    }

    private static void diffusion(Md md, JsonNode s, String where) {
        md.line("## Masked diffusion");
        md.blank();
        JsonNode o = s.path("options");
        md.line("Model `" + s.path("model").asText() + "`, " + o.path("prompts").size() + " prompts, a canvas of "
                + o.path("gen_length").asInt() + " positions. Passes and drift are exact counts over the prompts; speed is "
                + "positions per second relative to the baseline (" + o.path("baseline").asText() + ") in the same repetition. "
                + "Drift: canvas positions whose token differs from the same rule's uncached run.");
        md.blank();
        md.line("| rule | block | cache | passes | positions per pass | positions/s | relative to baseline | drift | repetitions |");
        md.line("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        JsonNode figures = array(s, "figures", where);
        for (int i = 0; i < figures.size(); i++) {
            JsonNode f = figures.get(i);
            String at = where + "figures[" + i + "].";
            Fig rate = fig(f, "positions_per_s", at);
            Fig rel = fig(f, "relative_to_baseline", at);
            md.line("| " + f.path("rule").asText() + " | " + f.path("block_length").asInt() + " | " + f.path("cache").asText() + " | "
                    + f.path("passes").asLong() + " | " + fixed(f.path("positions_per_pass").asDouble(), 2) + " | " + rate.format(1) + " | "
                    + rel.format(1) + " | " + f.path("drift_positions").asLong() + " | " + counts(rate) + " |");
        }
        md.blank();
    }

    private static void batch(Md md, Map<String, byte[]> charts, JsonNode s, String base, String subtitle, String where) {
        md.line("## Batched decode");
        md.blank();
        modelLine(md, s);
        JsonNode batches = array(s, "batched_decode", where);
        Boxes boxes = new Boxes();
        md.line("| batch | tok/s (all sequences) | repetitions |");
        md.line("| ---: | ---: | ---: |");
        for (int i = 0; i < batches.size(); i++) {
            JsonNode b = batches.get(i);
            String at = where + "batched_decode[" + i + "].";
            int batch = integer(b, "batch", at);
            Fig tps = fig(b, "tokens_per_s", at);
            md.line("| " + batch + " | " + tps.format(1) + " | " + counts(tps) + " |");
            boxes.add(tps, Integer.toString(batch));
        }
        md.blank();
        if (batches.size() > 0) {
            String file = base + "-batch.png";
            chart(md, charts, file, "batched decode tokens/s by batch size", () -> BenchCharts.boxChart(title(s, "batched decode tokens/s by batch size"),
                    subtitle, "batch size (sequences)", "tokens/s (all sequences together)", boxes));
        }
        JsonNode rows = s.path("rows_per_pass");
        if (rows.isArray() && rows.size() > 0) {
            md.line("### One pass over k rows");
            md.blank();
            boolean bounds = rows.get(0).has("fma_bound_millis");
            if (bounds) {
                md.line("Arithmetic-bound time: k × " + s.path("multiply_adds_per_row").asLong()
                        + " multiply-adds at the " + fixed(s.path("fma_peak_macs_per_s").asDouble() / 1e9, 1)
                        + " GMAC/s measured in the same run; goal: ratio ≤ max(1.2, 1.25 × arithmetic-bound / one row).");
                md.blank();
                md.line("| rows | ms per pass | ratio to one row | arithmetic-bound ms | goal ratio | met | repetitions |");
                md.line("| ---: | ---: | ---: | ---: | ---: | :---: | ---: |");
            } else {
                md.line("| rows | ms per pass | ratio to one row | repetitions |");
                md.line("| ---: | ---: | ---: | ---: |");
            }
            double[][] points = new double[rows.size()][];
            for (int i = 0; i < rows.size(); i++) {
                JsonNode r = rows.get(i);
                String at = where + "rows_per_pass[" + i + "].";
                int k = integer(r, "rows", at);
                Fig millis = fig(r, "millis", at);
                double ratio = number(r, "ratio_to_one_row", at);
                if (bounds) {
                    md.line("| " + k + " | " + millis.format(1) + " | " + fixed(ratio, 2) + " | "
                            + fixed(number(r, "fma_bound_millis", at), 1) + " | " + fixed(number(r, "goal_ratio", at), 2)
                            + " | " + (r.path("meets_goal").asBoolean() ? "yes" : "no") + " | " + counts(millis) + " |");
                } else {
                    md.line("| " + k + " | " + millis.format(1) + " | " + fixed(ratio, 2) + " | " + counts(millis) + " |");
                }
                points[i] = new double[] {k, ratio};
            }
            md.blank();
            String file = base + "-rows.png";
            chart(md, charts, file, "time of one pass over k rows relative to one row", () -> BenchCharts.rowsChart(
                    title(s, "one pass over k rows, relative to one row"), subtitle, points));
        }
        memory(md, s);
    }

    private static final Map<String, String> MEMORY_LABELS = Map.of(
            "heap_used_bytes", "Java heap used",
            "heap_committed_bytes", "Java heap committed",
            "heap_max_bytes", "Java heap maximum",
            "off_heap_bytes", "off-heap (resident outside the committed heap)",
            "kv_cache_bytes", "KV cache",
            "weights_mapped_bytes", "weights mapped",
            "process_resident_bytes", "process resident",
            "process_peak_resident_bytes", "process peak resident");

    private static void memory(Md md, JsonNode s) {
        JsonNode m = s.path("memory");
        if (!m.isObject() || m.isEmpty()) {
            return;
        }
        md.line("### Memory");
        md.blank();
        md.line("| | |");
        md.line("| --- | ---: |");
        for (Iterator<Map.Entry<String, JsonNode>> it = m.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String label = MEMORY_LABELS.getOrDefault(e.getKey(), e.getKey().replace('_', ' '));
            JsonNode v = e.getValue();
            boolean isBytes = e.getKey().endsWith("_bytes");
            String value;
            if (v.isNumber()) {
                value = v.asDouble() < 0 ? "not reported" : isBytes ? bytes(v.asLong()) : v.asText();
            } else if (v.isObject() && v.has("median")) {
                Fig f = fig(m, e.getKey(), "memory.");
                value = isBytes ? f.format(1.0 / (1 << 20)) + " MiB" : f.format(1);
            } else {
                value = v.asText();
            }
            md.row(label, value);
        }
        md.blank();
    }

    private static String title(JsonNode s, String what) {
        String model = text(s, "model");
        String dtype = text(s, "dtype");
        return (model == null ? "" : model + (dtype == null ? "" : " (" + dtype + ")") + ": ") + what;
    }

    // ---------------------------------------------------------------- charts

    /**
     * Box plots of one series of figures, one box per category, with every repetition drawn over its
     * box as a dot (JFreeChart's own outlier circles grow with the box width, and its axis range leaves
     * outliers out; a scatter layer of all values avoids both).
     */
    static final class Boxes {
        final List<Fig> figures = new ArrayList<>();
        final List<String> categories = new ArrayList<>();

        void add(Fig f, String category) {
            figures.add(f);
            categories.add(category);
        }
    }

    /**
     * True when this Java runtime can draw charts: it has the java.desktop module (AWT) and JFreeChart. The
     * GPU check's trimmed runtime has neither, to fit the device tool's 64 MiB; its reports then say so in
     * place of each chart.
     */
    static final boolean CHARTS = ModuleLayer.boot().findModule("java.desktop").isPresent() && classPresent("org.jfree.chart.JFreeChart");

    private static boolean classPresent(String name) {
        try {
            Class.forName(name, false, BenchReport.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException | LinkageError e) {
            return false;
        }
    }

    /** Adds chart {@code file} (drawn by {@code draw}) and its image line, or a line saying why there is none. */
    private static void chart(Md md, Map<String, byte[]> charts, String file, String title, java.util.function.Supplier<byte[]> draw) {
        if (CHARTS) {
            charts.put(file, draw.get());
            md.image(title, file);
        } else {
            md.line("(chart \"" + title + "\" not drawn: this Java runtime has no java.desktop module or no JFreeChart)");
            md.blank();
        }
    }

    // ---------------------------------------------------------------- figures

    /** One figure of the result: median, quartiles and the repetitions. */
    record Fig(double median, double q1, double q3, double[] values) {

        /** {@code median (q1–q3)} of the figure × {@code scale}, with decimals chosen by the median's size. */
        String format(double scale) {
            double m = median * scale;
            int d = decimals(m);
            return fixed(m, d) + " (" + fixed(q1 * scale, d) + "–" + fixed(q3 * scale, d) + ")";
        }


    }

    static int decimals(double x) {
        double a = Math.abs(x);
        return a >= 100 ? 1 : a >= 1 ? 2 : 3;
    }

    static String fixed(double x, int decimals) {
        return String.format(Locale.ROOT, "%." + decimals + "f", x);
    }

    private static Fig fig(JsonNode parent, String field, String where) {
        JsonNode n = parent.get(field);
        if (n == null || !n.isObject() || !n.path("median").isNumber() || !n.path("q1").isNumber()
                || !n.path("q3").isNumber() || (n.has("values") && !n.get("values").isArray())) {
            throw new IllegalArgumentException("The benchmark result's " + where + field + " is missing or not a "
                    + "figure {median, q1, q3, values}.");
        }
        JsonNode v = n.path("values");
        double[] values = new double[v.size()];
        for (int i = 0; i < values.length; i++) {
            if (!v.get(i).isNumber()) {
                throw new IllegalArgumentException("The benchmark result's " + where + field + ".values[" + i
                        + "] is not a number.");
            }
            values[i] = v.get(i).asDouble();
        }
        return new Fig(n.get("median").asDouble(), n.get("q1").asDouble(), n.get("q3").asDouble(), values);
    }

    private static JsonNode array(JsonNode parent, String field, String where) {
        JsonNode n = parent.get(field);
        if (n == null || !n.isArray()) {
            throw new IllegalArgumentException("The benchmark result's " + where + field + " is missing or not an array.");
        }
        return n;
    }

    private static int integer(JsonNode parent, String field, String where) {
        JsonNode n = parent.get(field);
        if (n == null || !n.canConvertToInt() || !n.isIntegralNumber()) {
            throw new IllegalArgumentException("The benchmark result's " + where + field + " is missing or not a whole number.");
        }
        return n.asInt();
    }

    private static double number(JsonNode parent, String field, String where) {
        JsonNode n = parent.get(field);
        if (n == null || !n.isNumber()) {
            throw new IllegalArgumentException("The benchmark result's " + where + field + " is missing or not a number.");
        }
        return n.asDouble();
    }

    /** The repetition count of the figures of one row ("5", or "5 / 4" when they differ). */
    private static String counts(Fig... figs) {
        Set<Integer> n = new LinkedHashSet<>();
        for (Fig f : figs) {
            if (f != null) {
                n.add(f.values.length);
            }
        }
        List<String> s = new ArrayList<>();
        for (int c : n) {
            s.add(c == 0 ? "–" : Integer.toString(c));
        }
        return String.join(" / ", s);
    }

    private static String threadsWord(int threads) {
        return threads + (threads == 1 ? " thread" : " threads");
    }

    /** Bytes in binary units: {@code 32 MiB}, {@code 23.5 GiB}. */
    static String bytes(long b) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
        double v = b;
        int u = 0;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        if (u == 0) {
            return b + " B";
        }
        return (v == Math.rint(v) ? String.format(Locale.ROOT, "%.0f", v) : String.format(Locale.ROOT, "%.1f", v))
                + " " + units[u];
    }

    private static String text(JsonNode n, String field) {
        JsonNode v = n == null ? null : n.get(field);
        return v == null || v.isNull() || v.isContainerNode() ? null : v.asText();
    }

    private static String joinArray(JsonNode a) {
        List<String> s = new ArrayList<>();
        a.forEach(e -> s.add(e.asText()));
        return String.join(", ", s);
    }

    private static void addIf(List<String> list, String s) {
        if (s != null && !s.isBlank()) {
            list.add(s);
        }
    }

    private static String orElse(String s, String fallback) {
        return s == null || s.isBlank() ? fallback : s;
    }

    /** A Markdown text under construction. */
    private static final class Md {
        private final StringBuilder b = new StringBuilder();

        void line(String s) {
            b.append(s).append('\n');
        }

        void blank() {
            b.append('\n');
        }

        void row(String key, String value) {
            line("| " + cell(key) + " | " + cell(value) + " |");
        }

        void image(String alt, String file) {
            boolean plain = file.chars().noneMatch(c -> c == ' ' || c == '(' || c == ')' || c == '<' || c == '>');
            line("![" + alt + "](" + (plain ? file : "<" + file + ">") + ")");
            blank();
        }

        private static String cell(String s) {
            return s.replace("|", "\\|").replace("\n", " ");
        }

        @Override
        public String toString() {
            return b.toString();
        }
    }

    // ---------------------------------------------------------------- writing

    /**
     * Writes every output to a temporary file in {@code dir}, then renames each into place; on any
     * failure removes the temporary files and the outputs already renamed.
     */
    private static List<Path> writeAll(Path dir, List<Output> outputs) throws IOException {
        List<Path> temps = new ArrayList<>();
        List<Path> placed = new ArrayList<>();
        boolean done = false;
        try {
            Files.createDirectories(dir);
            for (Output o : outputs) {
                Path tmp = dir.resolve("." + o.file.getFileName() + "." + Long.toHexString(
                        ThreadLocalRandom.current().nextLong() >>> 1) + ".partial");
                temps.add(tmp);
                try (OutputStream out = Files.newOutputStream(tmp, StandardOpenOption.CREATE_NEW,
                        StandardOpenOption.WRITE)) {
                    out.write(o.bytes);
                }
            }
            for (int i = 0; i < outputs.size(); i++) {
                Path target = outputs.get(i).file;
                try {
                    Files.move(temps.get(i), target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(temps.get(i), target, StandardCopyOption.REPLACE_EXISTING);
                }
                placed.add(target);
            }
            done = true;
            return List.copyOf(placed);
        } catch (IOException e) {
            throw new IOException("could not write the benchmark report beside " + outputs.getLast().file
                    + " (" + dev.tandem.runtime.IoErrors.reason(e) + "); no report files were left.", e);
        } finally {
            for (Path t : temps) {
                deleteQuietly(t);
            }
            if (!done) {
                for (Path p : placed) {
                    deleteQuietly(p);
                }
            }
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException | RuntimeException e) {
            // best effort: the original failure is what the caller hears about
        }
    }
}
