package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code ./tandem serve} as a user starts it (the launcher and the packaged jar, run by failsafe after
 * {@code package}): greedy completions equal {@code ./tandem generate} with the same prompt, token for token, and
 * so does a chat (with {@code generate --chat}); SIGTERM stops it gracefully with exit code 143.
 */
class ServeIT {
    private static final Path ROOT = TestModels.modelsDir().getParent();
    private static final ObjectMapper JSON = new ObjectMapper();

    private static ProcessBuilder tandem(List<String> args) {
        List<String> cmd = new ArrayList<>(List.of("bash", ROOT.resolve("tandem").toString()));
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(ROOT.toFile());
        pb.environment().put("TANDEM_SKIP_BUILD", "1");
        return pb;
    }

    private static JsonNode generate(String... args) throws IOException, InterruptedException {
        List<String> a = new ArrayList<>(List.of("generate", "--model", "models/bard-s", "--format", "json", "--temperature", "0",
                "--threads", "2"));
        a.addAll(List.of(args));
        Process p = tandem(a).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        return JSON.readTree(out);
    }

    @Test
    void servedGreedyCompletionsAreGeneratesTokensAndSigtermStopsIt() throws Exception {
        Path errFile = Files.createTempFile("serve-it", ".err");
        Process server = tandem(List.of("serve", "--model", "models/bard-s", "--port", "0", "--threads", "2",
                "--chat-template", "models/chat-templates/llama3.jinja"))
                .redirectError(errFile.toFile()).start();
        Supplier<String> err = () -> {
            try {
                return Files.readString(errFile);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        };
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
            String url = null;
            for (String line; url == null && (line = out.readLine()) != null; ) {
                if (line.startsWith("listening on ")) {
                    url = line.substring("listening on ".length());
                }
            }
            assertTrue(url != null && url.startsWith("http://127.0.0.1:"), "no listening line; stderr: " + err.get());
            Tokenizer tok = ModelLoader.tokenizer(TestModels.model("bard-s"));
            HttpClient http = HttpClient.newHttpClient();
            for (String prompt : List.of("ROMEO:", "First Citizen:")) {
                JsonNode want = generate("--prompt", prompt, "--max-tokens", "16");
                String body = JSON.writeValueAsString(JSON.createObjectNode().put("model", "bard-s").put("prompt", prompt)
                        .put("max_tokens", 16).put("temperature", 0).put("logprobs", 0));
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url + "/v1/completions"))
                        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                        HttpResponse.BodyHandlers.ofString());
                assertEquals(200, r.statusCode(), r.body());
                JsonNode choice = JSON.readTree(r.body()).get("choices").get(0);
                assertEquals(want.get("text").asText(), choice.get("text").asText(), prompt);
                List<String> wantTokens = new ArrayList<>();
                for (JsonNode id : want.get("generated_ids")) {
                    wantTokens.add(new String(tok.tokenBytes(id.asInt()), StandardCharsets.UTF_8));
                }
                List<String> gotTokens = new ArrayList<>();
                choice.get("logprobs").get("tokens").forEach(t -> gotTokens.add(t.asText()));
                assertEquals(wantTokens, gotTokens, prompt);
            }
            // Chat: the same conversation through generate --chat and /v1/chat/completions.
            JsonNode want = generate("--chat", "--chat-template", "models/chat-templates/llama3.jinja", "--system", "Be brief.",
                    "--prompt", "Who goes there?", "--max-tokens", "16");
            String chat = "{\"model\": \"bard-s\", \"max_tokens\": 16, \"temperature\": 0, \"logprobs\": true, \"messages\": "
                    + "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Who goes there?\"}]}";
            HttpResponse<String> c = http.send(HttpRequest.newBuilder(URI.create(url + "/v1/chat/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(chat)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, c.statusCode(), c.body());
            JsonNode reply = JSON.readTree(c.body());
            assertEquals(want.get("text").asText(), reply.get("choices").get(0).get("message").get("content").asText());
            assertEquals(want.get("prompt_ids").size(), reply.get("usage").get("prompt_tokens").asInt());
            List<String> wantTokens = new ArrayList<>();
            for (JsonNode id : want.get("generated_ids")) {
                wantTokens.add(new String(tok.tokenBytes(id.asInt()), StandardCharsets.UTF_8));
            }
            List<String> gotTokens = new ArrayList<>();
            reply.get("choices").get(0).get("logprobs").get("content").forEach(t -> gotTokens.add(t.get("token").asText()));
            assertEquals(wantTokens, gotTokens);

            HttpResponse<String> metrics = http.send(HttpRequest.newBuilder(URI.create(url + "/metrics")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertTrue(metrics.body().contains("tandem_requests_total{endpoint=\"completions\",outcome=\"ok\"} 2\n"), metrics.body());
        } finally {
            server.toHandle().destroy(); // SIGTERM (Process.destroy would also close our end of its pipes)
            assertTrue(server.waitFor(60, TimeUnit.SECONDS), "serve did not stop on SIGTERM");
        }
        assertEquals(143, server.exitValue(), err.get());
        assertTrue(err.get().contains("tandem serve: stopping"), err.get());
    }
}
