package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.weights.SafetensorsWriter;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bad input through the real command line, in a separate JVM: a non-zero exit, and on stderr one
 * sentence naming the cause as the last line, with nothing else but the JVM's incubator notice.
 */
class BadInputCliTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    enum Case {
        MISSING_DIRECTORY("model directory not found"),
        MISSING_CONFIG("config.json"),
        MISSING_TOKENIZER("tokenizer.json"),
        MISSING_WEIGHTS("model.safetensors"),
        UNKNOWN_MODEL_TYPE("model_type"),
        UNSUPPORTED_ROPE_SCALING("rope_scaling"),
        TRUNCATED_SAFETENSORS("model.safetensors"),
        OFFSETS_PAST_THE_FILE("model.safetensors"),
        OVERLAPPING_OFFSETS("overlap"),
        SHAPE_DISAGREES_WITH_CONFIG("mlp.gate_proj.weight"),
        PROMPT_LONGER_THAN_CONTEXT("max_position_embeddings"),
        NAN_IN_A_WEIGHT("holds a NaN"),
        /** Issue 13: a shape error caused by a left-out config key never named the key. */
        DEFAULTED_KEY_BEHIND_A_SHAPE_ERROR("does not give intermediate_size, so its default was used: intermediate_size = 11008");

        final String named;

        Case(String named) {
            this.named = named;
        }
    }

    private static void editConfig(Path dir, java.util.function.Consumer<ObjectNode> edit) throws IOException {
        Path file = dir.resolve("config.json");
        ObjectNode config = (ObjectNode) JSON.readTree(file.toFile());
        edit.accept(config);
        JSON.writeValue(file.toFile(), config);
    }

    /** A two-tensor checkpoint whose header is written by hand. */
    private static void writeHeader(Path dir, String header, int dataBytes) throws IOException {
        SafetensorsWriter.writeRaw(dir.resolve("model.safetensors"), header, new byte[dataBytes]);
    }

    /** Writes a NaN over the first element of the checkpoint's first tensor (bard-s is f32). */
    private static void putNaN(Path file) throws IOException {
        byte[] all = Files.readAllBytes(file);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(all).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        long headerLength = b.getLong(0);
        JsonNode header = JSON.readTree(new String(all, 8, (int) headerLength, StandardCharsets.UTF_8));
        for (var field : header.properties()) {
            if (!field.getKey().equals("__metadata__")) {
                b.putFloat((int) (8 + headerLength + field.getValue().get("data_offsets").get(0).asLong()), Float.NaN);
                break;
            }
        }
        Files.write(file, all);
    }

    private Path prepare(Case c) throws IOException {
        Path dir = TestModels.copyOf("bard-s", tmp.resolve("model"));
        switch (c) {
            case MISSING_DIRECTORY -> dir = tmp.resolve("no-such-model");
            case MISSING_CONFIG -> Files.delete(dir.resolve("config.json"));
            case MISSING_TOKENIZER -> Files.delete(dir.resolve("tokenizer.json"));
            case MISSING_WEIGHTS -> Files.delete(dir.resolve("model.safetensors"));
            case UNKNOWN_MODEL_TYPE -> editConfig(dir, o -> o.put("model_type", "gpt2"));
            case UNSUPPORTED_ROPE_SCALING -> editConfig(dir, o -> o.putObject("rope_scaling").put("rope_type", "yarn").put("factor", 4.0));
            case TRUNCATED_SAFETENSORS -> {
                Path f = dir.resolve("model.safetensors");
                byte[] all = Files.readAllBytes(f);
                Files.write(f, java.util.Arrays.copyOf(all, all.length / 2));
            }
            case OFFSETS_PAST_THE_FILE -> writeHeader(dir,
                    "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                            + "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", 20);
            case OVERLAPPING_OFFSETS -> writeHeader(dir,
                    "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                            + "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24);
            case SHAPE_DISAGREES_WITH_CONFIG -> editConfig(dir, o -> o.put("intermediate_size", 200));
            case PROMPT_LONGER_THAN_CONTEXT -> editConfig(dir, o -> o.put("max_position_embeddings", 8));
            case NAN_IN_A_WEIGHT -> putNaN(dir.resolve("model.safetensors"));
            case DEFAULTED_KEY_BEHIND_A_SHAPE_ERROR -> editConfig(dir, o -> o.remove("intermediate_size"));
        }
        return dir;
    }

    @ParameterizedTest
    @EnumSource(Case.class)
    void badInputGivesOneSentenceNamingTheCause(Case c) throws Exception {
        Path dir = prepare(c);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "--add-modules=jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "generate", "--model", dir.toString(), "--format", "json",
                "--prompt", "ROMEO: a prompt of more than eight tokens, for the context case"));
        Process p = new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the command did not finish");
        assertNotEquals(0, p.exitValue(), err);
        List<String> lines = err.lines().filter(l -> !l.isBlank()).toList();
        String last = lines.getLast();
        assertTrue(last.startsWith("tandem: ") && last.contains(c.named), c + ": " + err);
        assertTrue(last.endsWith("."), "one sentence: " + last);
        for (String line : lines.subList(0, lines.size() - 1)) {
            assertEquals("WARNING: Using incubator modules: jdk.incubator.vector", line, c + ": unexpected stderr line");
        }
        System.out.println(c + " -> " + last);
    }
}
