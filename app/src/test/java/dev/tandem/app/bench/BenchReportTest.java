package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class BenchReportTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    // ------------------------------------------------------------ result builders

    private static ObjectNode figure(double median, double q1, double q3, double... values) {
        ObjectNode n = JSON.createObjectNode();
        n.put("median", median);
        n.put("q1", q1);
        n.put("q3", q3);
        n.put("iqr", q3 - q1);
        ArrayNode v = n.putArray("values");
        for (double x : values) {
            v.add(x);
        }
        return n;
    }

    private static ObjectNode root(String suite) {
        ObjectNode r = JSON.createObjectNode();
        r.put("suite", suite);
        r.put("date", "2026-11-26T03:17:00.668Z");
        r.put("command", "./tandem bench --suite " + suite + " --model models/bard-l --threads 1,4");
        r.put("commit", "3d7ae0989102");
        r.put("model_dir", "models/bard-l");
        ObjectNode m = r.putObject("machine");
        m.put("cpu", "Test CPU 9000");
        m.put("cores", 8);
        m.put("memory_bytes", 17_179_869_184L);
        m.put("last_level_cache_bytes", 33_554_432L);
        m.put("os", "Linux 6.1 amd64");
        m.put("jdk", "OpenJDK 64-Bit Server VM 25.0.1+8");
        return r;
    }

    private static void decodeSection(ObjectNode s, boolean fitsInCache) {
        s.put("model", "bard-l");
        s.put("dtype", "f32");
        s.put("parameters", 5_401_856);
        s.put("weight_bytes_per_token", 20_000_000);
        s.putObject("options").put("prompt_tokens", 32).put("decode_tokens", 64).put("repetitions", 5);
        ArrayNode runs = s.putArray("runs");
        ObjectNode one = runs.addObject();
        one.put("threads", 1);
        ObjectNode bw = one.putObject("memory_read_bytes_per_s");
        bw.put("median", 9.5e9).put("best", 1.0e10);
        bw.putArray("passes").add(9.0e9).add(9.5e9).add(1.0e10);
        one.set("prefill_tokens_per_s", figure(1095.24, 894.26, 1361.74, 761.9, 894.26, 1372.0, 1361.74, 1095.24));
        one.set("decode_tokens_per_s", figure(100, 95, 105, 90, 95, 100, 105, 110));
        one.set("weight_read_bytes_per_s", figure(2.0e9, 1.9e9, 2.1e9, 1.8e9, 1.9e9, 2.0e9, 2.1e9, 2.2e9));
        one.put("fraction_of_memory_bandwidth", 0.2);
        ObjectNode four = runs.addObject();
        four.put("threads", 4);
        ObjectNode bw4 = four.putObject("memory_read_bytes_per_s");
        bw4.put("median", 3.0e10).put("best", 3.2e10);
        bw4.putArray("passes").add(2.9e10).add(3.0e10).add(3.2e10);
        four.set("prefill_tokens_per_s", figure(2661.34, 2645.94, 2671.32, 2278.6, 2692.78, 2671.32, 2645.94, 2661.34));
        four.set("decode_tokens_per_s", figure(400, 380, 410, 300, 380, 400, 410, 415));
        four.set("weight_read_bytes_per_s", figure(8.0e9, 7.6e9, 8.2e9, 6.0e9, 7.6e9, 8.0e9, 8.2e9, 8.3e9));
        four.put("fraction_of_memory_bandwidth", 0.25);
        s.put("weights_fit_in_last_level_cache", fitsInCache);
    }

    private static void prefillSection(ObjectNode s) {
        s.put("model", "bard-l");
        s.put("dtype", "f32");
        ObjectNode o = s.putObject("options");
        o.putArray("prompt_lengths").add(16).add(128);
        o.put("repetitions", 3);
        ArrayNode p = s.putArray("prefill");
        p.addObject().put("threads", 4).put("prompt_tokens", 16)
                .<ObjectNode>set("prefill_tokens_per_s", figure(1500, 1450, 1550, 1400, 1500, 1600))
                .set("time_to_first_token_ms", figure(10.67, 10.32, 11.03, 11.4, 10.67, 10.0));
        p.addObject().put("threads", 4).put("prompt_tokens", 128)
                .<ObjectNode>set("prefill_tokens_per_s", figure(2500, 2450, 2550, 2400, 2500, 2600))
                .set("time_to_first_token_ms", figure(51.2, 50.2, 52.25, 53.3, 51.2, 49.2));
        ObjectNode mem = s.putObject("memory");
        mem.put("heap_used_bytes", 50L << 20);
        mem.put("kv_cache_bytes", 3L << 30);
        mem.put("off_heap_bytes", -1);
    }

    private static void batchSection(ObjectNode s) {
        s.put("model", "bard-l");
        s.put("dtype", "f32");
        s.putObject("options").put("threads", 2).put("decode_steps", 64).put("repetitions", 5);
        ArrayNode b = s.putArray("batched_decode");
        b.addObject().put("batch", 1).set("tokens_per_s", figure(637.07, 568.23, 845.09, 568.23, 637.07, 473.54, 885.67, 845.09));
        b.addObject().put("batch", 16).set("tokens_per_s", figure(1869.66, 1828.54, 1878.84, 1878.84, 1790.2, 1828.54, 1869.66, 1887.99));
        ArrayNode rows = s.putArray("rows_per_pass");
        rows.addObject().put("rows", 1).<ObjectNode>set("millis", figure(1.3158, 1.3156, 1.3263, 1.444, 1.3263, 1.2984, 1.3158, 1.3156))
                .put("ratio_to_one_row", 1.0);
        rows.addObject().put("rows", 2).<ObjectNode>set("millis", figure(1.6769, 1.6496, 1.6966, 1.6966, 1.7091, 1.6496, 1.6769, 1.6278))
                .put("ratio_to_one_row", 1.2745);
        rows.addObject().put("rows", 8).<ObjectNode>set("millis", figure(3.8116, 3.6663, 5.4052, 5.4052, 10.4982, 3.8116, 3.6663, 3.552))
                .put("ratio_to_one_row", 2.8968);
    }

    private static void assertHeader(String md, String suite) {
        assertTrue(md.contains("Test CPU 9000, 8 cores, 16 GiB memory, 32 MiB last-level cache, Linux 6.1 amd64"), md);
        assertTrue(md.contains("| JDK | OpenJDK 64-Bit Server VM 25.0.1+8 |"), md);
        assertTrue(md.contains("| date | 2026-11-26T03:17:00.668Z |"), md);
        assertTrue(md.contains("| commit | 3d7ae0989102 |"), md);
        assertTrue(md.contains("```sh\n./tandem bench --suite " + suite + " --model models/bard-l --threads 1,4\n```"), md);
    }

    private static void assertChart(Path png) throws IOException {
        assertTrue(Files.isRegularFile(png), png + " exists");
        BufferedImage image = ImageIO.read(png.toFile());
        assertNotNull(image, png + " decodes as an image");
        assertEquals(BenchReport.CHART_WIDTH, image.getWidth());
        assertEquals(BenchReport.CHART_HEIGHT, image.getHeight());
        assertEquals(800, image.getWidth());
        assertEquals(450, image.getHeight());
    }

    private List<String> listDir() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    // ------------------------------------------------------------ reports of each suite

    @Test
    void decodeReportStatesMachineEveryFigureTheRooflineInWordsAndLinksItsChart() throws IOException {
        ObjectNode r = root("decode");
        decodeSection(r, true);
        Path json = dir.resolve("2026-11-26T0317Z-decode-bard-l.json");

        List<Path> written = BenchReport.write(r, json);

        Path md = dir.resolve("2026-11-26T0317Z-decode-bard-l.md");
        Path png = dir.resolve("2026-11-26T0317Z-decode-bard-l-decode.png");
        assertEquals(List.of(png, md), written);
        String text = Files.readString(md);
        assertTrue(text.startsWith("# Benchmark: decode — bard-l (f32)\n"), text);
        assertHeader(text, "decode");
        assertTrue(text.contains("5,401,856 parameters, 20.0 MB of weights read per decoded token"), text);
        assertTrue(text.contains("`prompt_tokens` 32, `decode_tokens` 64, `repetitions` 5"), text);
        // every figure as median (q1–q3), with the repetition and pass counts
        assertTrue(text.contains("| 1 | 100.0 (95.0–105.0) | 1095.2 (894.3–1361.7) | 2.00 (1.90–2.10) | 10.00 | 9.50 | 0.20 | 5 (bandwidth: 3 passes) |"), text);
        assertTrue(text.contains("| 4 | 400.0 (380.0–410.0) | 2661.3 (2645.9–2671.3) | 8.00 (7.60–8.20) | 32.00 | 30.00 | 0.25 | 5 (bandwidth: 3 passes) |"), text);
        assertTrue(text.contains("With 1 thread, decode reads weights at 2.00 GB/s, 0.20 of the 10.00 GB/s measured with "
                + "1 thread in the same run (best of 3 passes; the median pass read 9.50 GB/s)."), text);
        assertTrue(text.contains("With 4 threads, decode reads weights at 8.00 GB/s, 0.25 of the 32.00 GB/s measured with "
                + "4 threads in the same run"), text);
        assertTrue(text.contains("the weights fit in the last-level cache"), text);
        assertTrue(text.contains("![decode tokens/s by thread count](2026-11-26T0317Z-decode-bard-l-decode.png)"), text);
        assertChart(png);
        assertEquals(List.of("2026-11-26T0317Z-decode-bard-l-decode.png", "2026-11-26T0317Z-decode-bard-l.md"), listDir(),
                "no temporary files are left");
        assertEquals("true", System.getProperty("java.awt.headless"), "charts render headless");
    }

    @Test
    void decodeReportHasNoCacheNoteWhenTheWeightsDoNotFit() throws IOException {
        ObjectNode r = root("decode");
        decodeSection(r, false);
        BenchReport.write(r, dir.resolve("d.json"));
        assertFalse(Files.readString(dir.resolve("d.md")).contains("fit in the last-level cache"));
    }

    @Test
    void batchReportTabulatesBatchesAndRowsAndDrawsBoxAndLineCharts() throws IOException {
        ObjectNode r = root("batch");
        batchSection(r);
        List<Path> written = BenchReport.write(r, dir.resolve("b.json"));

        assertEquals(List.of(dir.resolve("b-batch.png"), dir.resolve("b-rows.png"), dir.resolve("b.md")), written);
        String text = Files.readString(dir.resolve("b.md"));
        assertTrue(text.startsWith("# Benchmark: batch — bard-l (f32)\n"), text);
        assertHeader(text, "batch");
        assertTrue(text.contains("| 1 | 637.1 (568.2–845.1) | 5 |"), text);
        assertTrue(text.contains("| 16 | 1869.7 (1828.5–1878.8) | 5 |"), text);
        assertTrue(text.contains("| 1 | 1.32 (1.32–1.33) | 1.00 | 5 |"), text);
        assertTrue(text.contains("| 2 | 1.68 (1.65–1.70) | 1.27 | 5 |"), text);
        assertTrue(text.contains("| 8 | 3.81 (3.67–5.41) | 2.90 | 5 |"), text);
        assertTrue(text.contains("](b-batch.png)"), text);
        assertTrue(text.contains("](b-rows.png)"), text);
        assertChart(dir.resolve("b-batch.png"));
        assertChart(dir.resolve("b-rows.png"));
    }

    @Test
    void prefillReportTabulatesPromptLengthsAndTheMemoryKeysPresent() throws IOException {
        ObjectNode r = root("prefill");
        prefillSection(r);
        List<Path> written = BenchReport.write(r, dir.resolve("p.json"));

        assertEquals(List.of(dir.resolve("p-prefill.png"), dir.resolve("p.md")), written);
        String text = Files.readString(dir.resolve("p.md"));
        assertHeader(text, "prefill");
        assertTrue(text.contains("`prompt_lengths` 16, 128, `repetitions` 3"), text);
        assertTrue(text.contains("| 4 | 16 | 1500.0 (1450.0–1550.0) | 10.67 (10.32–11.03) | 3 |"), text);
        assertTrue(text.contains("| 4 | 128 | 2500.0 (2450.0–2550.0) | 51.20 (50.20–52.25) | 3 |"), text);
        assertTrue(text.contains("| Java heap used | 50 MiB |"), text);
        assertTrue(text.contains("| KV cache | 3 GiB |"), text);
        assertTrue(text.contains("| off-heap (resident outside the committed heap) | not reported |"), text);
        assertFalse(text.contains("weights mapped"), "keys that are absent are not rendered");
        assertTrue(text.contains("](p-prefill.png)"), text);
        assertChart(dir.resolve("p-prefill.png"));
    }

    @Test
    void allSuiteReportRendersEveryNestedSectionWithItsCharts() throws IOException {
        ObjectNode r = root("all");
        decodeSection(r.putObject("decode"), false);
        prefillSection(r.putObject("prefill"));
        batchSection(r.putObject("batch"));
        List<Path> written = BenchReport.write(r, dir.resolve("all.json"));

        assertEquals(List.of(dir.resolve("all-decode.png"), dir.resolve("all-prefill.png"), dir.resolve("all-batch.png"),
                dir.resolve("all-rows.png"), dir.resolve("all.md")), written);
        String text = Files.readString(dir.resolve("all.md"));
        assertTrue(text.startsWith("# Benchmark: all — bard-l (f32)\n"), text);
        assertHeader(text, "all");
        int decode = text.indexOf("## Decode");
        int prefill = text.indexOf("## Prefill");
        int batch = text.indexOf("## Batched decode");
        assertTrue(decode > 0 && prefill > decode && batch > prefill, text);
        assertTrue(text.contains("| 4 | 400.0 (380.0–410.0) |"), text);
        assertTrue(text.contains("| 4 | 128 | 2500.0 (2450.0–2550.0) |"), text);
        assertTrue(text.contains("| 16 | 1869.7 (1828.5–1878.8) | 5 |"), text);
        for (String s : List.of("decode", "prefill", "batch", "rows")) {
            assertTrue(text.contains("](all-" + s + ".png)"), s);
            assertChart(dir.resolve("all-" + s + ".png"));
        }
    }

    @Test
    void committedResultsRenderToo() throws IOException {
        Path results = Path.of("..", "bench", "results");
        assumeTrue(Files.isDirectory(results), "run from the app module of a checkout");
        List<Path> jsons;
        try (Stream<Path> s = Files.list(results)) {
            // ./tandem bench results only (JMH writes its own JSON there too)
            jsons = s.filter(p -> p.getFileName().toString().matches(".*-(decode|prefill|batch|all)-.*\\.json"))
                    .sorted().toList();
        }
        for (Path json : jsons) {
            JsonNode result = JSON.readTree(json.toFile());
            Path copy = dir.resolve(json.getFileName());
            List<Path> written = BenchReport.write(result, copy);
            assertTrue(Files.readString(written.getLast()).contains(result.get("command").asText()), json.toString());
            for (Path p : written.subList(0, written.size() - 1)) {
                assertChart(p);
            }
        }
    }

    @Test
    void aResultFileIsReadAndReportedBesideItself() throws IOException {
        ObjectNode r = root("batch");
        batchSection(r);
        Path json = Files.writeString(dir.resolve("run 1.json"), JSON.writeValueAsString(r));
        List<Path> written = BenchReport.write(json);
        assertEquals(List.of(dir.resolve("run 1-batch.png"), dir.resolve("run 1-rows.png"), dir.resolve("run 1.md")),
                written);
        assertTrue(Files.readString(dir.resolve("run 1.md")).contains("](<run 1-rows.png>)"),
                "names with spaces are linked in angle brackets");

        Path bad = Files.writeString(dir.resolve("bad.json"), "{\"suite\": \"batch\",");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BenchReport.write(bad));
        assertTrue(e.getMessage().matches(java.util.regex.Pattern.quote(bad + " is not valid JSON (line ") + "\\d+, column \\d+\\)\\."), e.getMessage());
    }

    // ------------------------------------------------------------ bad input and failures

    @Test
    void resultWithoutSuiteIsAClearErrorAndWritesNothing() throws IOException {
        ObjectNode r = root("decode");
        decodeSection(r, false);
        r.remove("suite");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BenchReport.write(r, dir.resolve("x.json")));
        assertEquals("The benchmark result has no \"suite\" field, so it is not a result ./tandem bench wrote "
                + "(expected one of decode, prefill, batch, methods, engine, soak, attention, diffusion, views, rag or all).", e.getMessage());
        assertEquals(List.of(), listDir());
    }

    @Test
    void unknownSuiteAndMalformedFiguresAreClearErrors() throws IOException {
        ObjectNode unknown = root("latency");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BenchReport.write(unknown, dir.resolve("x.json")));
        assertEquals("Unknown benchmark suite \"latency\" in the result (expected decode, prefill, batch, methods, engine, soak, attention, diffusion, views, rag or all).",
                e.getMessage());

        ObjectNode broken = root("decode");
        decodeSection(broken, false);
        ((ObjectNode) broken.get("runs").get(1)).put("decode_tokens_per_s", 12.5);
        e = assertThrows(IllegalArgumentException.class, () -> BenchReport.write(broken, dir.resolve("x.json")));
        assertEquals("The benchmark result's runs[1].decode_tokens_per_s is missing or not a figure "
                + "{median, q1, q3, values}.", e.getMessage());

        ObjectNode nested = root("all");
        batchSection(nested.putObject("batch"));
        ((ObjectNode) nested.get("batch")).remove("batched_decode");
        e = assertThrows(IllegalArgumentException.class, () -> BenchReport.write(nested, dir.resolve("x.json")));
        assertEquals("The benchmark result's batch.batched_decode is missing or not an array.", e.getMessage());

        e = assertThrows(IllegalArgumentException.class, () -> BenchReport.write(root("all"), dir.resolve("x.json")));
        assertTrue(e.getMessage().contains("holds none of the sections"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class,
                () -> BenchReport.write(JSON.createArrayNode(), dir.resolve("x.json")));
        assertEquals("This is not a ./tandem bench result: that is a JSON object with a \"suite\" field "
                + "(JMH results, for one, are not).", e.getMessage());
        assertEquals(List.of(), listDir());
    }

    @Test
    void aFolderThatCannotBeCreatedLeavesNothing() throws IOException {
        Files.writeString(dir.resolve("not-a-folder"), "x");
        ObjectNode r = root("batch");
        batchSection(r);
        IOException e = assertThrows(IOException.class,
                () -> BenchReport.write(r, dir.resolve("not-a-folder").resolve("b.json")));
        assertTrue(e.getMessage().startsWith("could not write the benchmark report beside "), e.getMessage());
        assertEquals(List.of("not-a-folder"), listDir());
    }

    @Test
    void aFailureAfterSomeChartsArePlacedRemovesThemAndEveryTemporaryFile() throws IOException {
        // the Markdown goes last; a non-empty folder where it belongs makes that final rename fail
        Files.createDirectories(dir.resolve("b.md").resolve("occupied"));
        ObjectNode r = root("batch");
        batchSection(r);
        assertThrows(IOException.class, () -> BenchReport.write(r, dir.resolve("b.json")));
        assertEquals(List.of("b.md"), listDir(), "the charts and temporary files are gone");
        assertTrue(Files.isDirectory(dir.resolve("b.md").resolve("occupied")));
    }
}
