package dev.tandem.server;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.NamedMethods;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.tokenizer.Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * tandem serve driven by the official OpenAI Java SDK (a client no one here wrote): greedy completions, whole and
 * streamed, equal what {@code tandem generate} decodes for the same prompt (a {@link Generator} on the same model),
 * token for token.
 */
class OpenAiClientTest {
    static LanguageModel target;
    static LanguageModel draft;
    static TandemServer server;
    static OpenAIClient client;

    @BeforeAll
    static void start() {
        ModelLoader.Options o = ModelLoader.Options.defaults().withThreads(2).withKvMemory(64L << 20);
        target = ModelLoader.load(TestModels.model("bard-s"), o);
        draft = ModelLoader.load(TestModels.model("bard-s"), o.withBackend(target.backend()));
        server = TandemServer.start(ServedModels.of(target).withDraft(draft), ServerOptions.defaults().withPort(0),
                new PrintStream(System.err, true));
        client = OpenAIOkHttpClient.builder().baseUrl(server.url() + "/v1").apiKey("unused").maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        if (client != null) {
            client.close();
        }
        if (server != null) {
            server.close();
        }
        if (draft != null) {
            draft.close();
        }
        if (target != null) {
            target.close();
        }
    }

    static GenerationResult solo(String prompt, int maxTokens) {
        return new Generator(target).generate(GenerationRequest.of(prompt).withMaxTokens(maxTokens));
    }

    static List<String> tokenTexts(Tokenizer tok, int[] ids) {
        List<String> out = new ArrayList<>();
        for (int id : ids) {
            out.add(new String(tok.tokenBytes(id), StandardCharsets.UTF_8));
        }
        return out;
    }

    @Test
    void greedyCompletionsAreGenerateTokenForToken() {
        for (String prompt : List.of("ROMEO:", "First Citizen:\nBefore we proceed", "KING HENRY VI:")) {
            GenerationResult want = solo(prompt, 24);
            Completion c = client.completions().create(CompletionCreateParams.builder().model("bard-s").prompt(prompt)
                    .maxTokens(24).temperature(0.0).logprobs(2).build());
            assertEquals(want.text(), c.choices().getFirst().text(), prompt);
            assertEquals(tokenTexts(target.tokenizer(), want.generatedIds()), c.choices().getFirst().logprobs().orElseThrow().tokens().orElseThrow());
            assertEquals(want.generatedIds().length, c.usage().orElseThrow().completionTokens());
            assertEquals(want.promptIds().length, c.usage().orElseThrow().promptTokens());
            assertEquals("length", c.choices().getFirst().finishReason().asString());
        }
    }

    @Test
    void streamedCompletionsConcatenateToTheSameText() {
        String prompt = "ROMEO:";
        GenerationResult want = solo(prompt, 32);
        for (String method : NamedMethods.NAMES) {
            StringBuilder text = new StringBuilder();
            List<String> finish = new ArrayList<>();
            try (StreamResponse<Completion> s = client.completions().createStreaming(CompletionCreateParams.builder().model("bard-s")
                    .prompt(prompt).maxTokens(32).temperature(0.0).putAdditionalBodyProperty("method", JsonValue.from(method)).build())) {
                s.stream().forEach(chunk -> chunk.choices().forEach(ch -> {
                    text.append(ch.text());
                    ch._finishReason().asKnown().ifPresent(f -> finish.add(f.asString()));
                }));
            }
            if (!method.equals("collab")) { // collab is not lossless: the draft decodes where it is sure
                assertEquals(want.text(), text.toString(), method);
            }
            assertEquals(List.of("length"), finish, method);
        }
    }

    @Test
    void seededSamplingRepeatsAndChoicesDiffer() {
        CompletionCreateParams p = CompletionCreateParams.builder().model("bard-s").prompt("ROMEO:").maxTokens(16)
                .temperature(0.9).seed(7L).n(3).build();
        Completion a = client.completions().create(p);
        Completion b = client.completions().create(p);
        assertEquals(3, a.choices().size());
        for (int i = 0; i < 3; i++) {
            assertEquals(a.choices().get(i).text(), b.choices().get(i).text());
        }
        assertTrue(!a.choices().get(0).text().equals(a.choices().get(1).text())
                || !a.choices().get(1).text().equals(a.choices().get(2).text()), "three sampled choices were all equal");
    }
}
