package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code generate --kv-memory / --kv-dtype}: the cache options reach the model, bad values get a sentence. */
class KvOptionsCliTest {

    record Run(int exit, String out, String err) {}

    private static Run tandem(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, out.toString(), err.toString());
    }

    private static JsonNode generate(String... extra) throws Exception {
        String[] base = {"generate", "--model", TestModels.model("bard-s").toString(), "--prompt", "ROMEO:", "--temperature", "0",
                "--max-tokens", "12", "--format", "json"};
        String[] args = java.util.Arrays.copyOf(base, base.length + extra.length);
        System.arraycopy(extra, 0, args, base.length, extra.length);
        Run r = tandem(args);
        assertEquals(0, r.exit(), r.err());
        return new ObjectMapper().readTree(r.out());
    }

    @Test
    void aSmallBudgetAndBf16StillGenerate() throws Exception {
        JsonNode plain = generate();
        JsonNode budget = generate("--kv-memory", "1M");
        assertEquals(plain.get("generated_ids"), budget.get("generated_ids"), "f32 KV with a budget is the same cache");
        JsonNode bf16 = generate("--kv-dtype", "bf16");
        assertEquals(12, bf16.get("generated_ids").size());
    }

    /** Issue 13: a budget above the machine's memory ran until killed; now it is refused at start, naming both numbers. */
    @Test
    void aBudgetAboveTheMachinesMemoryIsRefusedAtStart() {
        String total = dev.tandem.runtime.HostMemory.gib(dev.tandem.runtime.HostMemory.totalBytes());
        Run r = tandem("generate", "--model", TestModels.model("bard-s").toString(), "--prompt", "x", "--kv-memory", "100T");
        assertEquals(1, r.exit());
        String last = r.err().strip().lines().reduce((a, b) -> b).orElse("");
        assertEquals("tandem: the KV cache of 102400.00 GiB (--kv-memory, or withKvMemory in the Java API) is more than the "
                + total + " of memory this machine (or its container) has; give it less.", last);
        assertEquals("", r.out());
    }

    @Test
    void badCacheOptionsGetOneSentence() {
        String bard = TestModels.model("bard-s").toString();
        for (String[] args : new String[][] {
                {"generate", "--model", bard, "--prompt", "x", "--kv-dtype", "f16"},
                {"generate", "--model", bard, "--prompt", "x", "--kv-memory", "lots"},
                {"generate", "--model", bard, "--prompt", "x", "--kv-memory", "100"}}) {
            Run r = tandem(args);
            assertNotEquals(0, r.exit());
            String last = r.err().strip().lines().reduce((a, b) -> b).orElse("");
            assertTrue(last.startsWith("tandem: ") && last.endsWith("."), String.join(" ", args) + " → " + r.err());
        }
    }
}
