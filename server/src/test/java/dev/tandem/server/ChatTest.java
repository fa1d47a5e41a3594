package dev.tandem.server;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import dev.langchain4j.data.message.SystemMessage;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.openai.OpenAiChatModel;
import dev.langchain4j.model.openai.OpenAiStreamingChatModel;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.chat.ChatMessage;
import dev.tandem.transformer.chat.ChatTemplate;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Chat through tandem serve with bard-s and the Llama 3 chat template (the bundled models have none), driven by
 * the official OpenAI Java SDK and by langchain4j's OpenAiChatModel / OpenAiStreamingChatModel: greedy answers
 * equal the rendered conversation's prompt ids decoded by {@link Generator} (what {@code tandem generate --chat}
 * runs), token for token.
 */
class ChatTest {
    @TempDir
    static Path dir;
    static LanguageModel target;
    static ChatTemplate template;
    static TandemServer server;
    static OpenAIClient client;

    @BeforeAll
    static void start() throws Exception {
        Path config = dir.resolve("tokenizer_config.json");
        try (InputStream in = ChatTest.class.getResourceAsStream("/chat/llama3/tokenizer_config.json")) {
            Files.copy(in, config); // Meta's Llama 3 file, a test resource of transformer (its test jar)
        }
        template = ChatTemplate.fromFile(config);
        target = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withThreads(2).withKvMemory(32L << 20));
        server = TandemServer.start(ServedModels.of(target).withChatTemplate(template), ServerOptions.defaults().withPort(0),
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
        if (target != null) {
            target.close();
        }
    }

    static GenerationResult solo(List<ChatMessage> messages, int maxTokens) {
        int[] ids = template.promptIds(target.tokenizer(), messages, true);
        return new Generator(target).generate(GenerationRequest.ofIds(ids).withMaxTokens(maxTokens));
    }

    @Test
    void theOpenAiSdkGetsGeneratesAnswer() {
        List<ChatMessage> conversation = List.of(ChatMessage.system("You speak in verse."), ChatMessage.user("Who are you?"));
        GenerationResult want = solo(conversation, 20);
        ChatCompletionCreateParams params = ChatCompletionCreateParams.builder().model("bard-s").addSystemMessage("You speak in verse.")
                .addUserMessage("Who are you?").maxCompletionTokens(20).temperature(0.0).build();
        ChatCompletion c = client.chat().completions().create(params);
        assertEquals(want.text(), c.choices().getFirst().message().content().orElseThrow());
        assertEquals(want.promptIds().length, c.usage().orElseThrow().promptTokens());
        assertEquals(want.generatedIds().length, c.usage().orElseThrow().completionTokens());

        StringBuilder streamed = new StringBuilder();
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(params)) {
            s.stream().forEach(chunk -> chunk.choices().forEach(ch -> ch.delta().content().ifPresent(streamed::append)));
        }
        assertEquals(want.text(), streamed.toString());
    }

    @Test
    void langchain4jsOpenAiChatModelGetsGeneratesAnswer() throws Exception {
        GenerationResult want = solo(List.of(ChatMessage.user("Tell me of Verona.")), 24);
        OpenAiChatModel model = OpenAiChatModel.builder().baseUrl(server.url() + "/v1").apiKey("unused").modelName("bard-s")
                .temperature(0.0).maxTokens(24).maxRetries(0).build();
        ChatResponse r = model.chat(ChatRequest.builder().messages(UserMessage.from("Tell me of Verona.")).build());
        assertEquals(want.text(), r.aiMessage().text());
        assertEquals(want.generatedIds().length, r.tokenUsage().outputTokenCount());

        GenerationResult want2 = solo(List.of(ChatMessage.system("Be brief."), ChatMessage.user("Tell me of Verona.")), 24);
        OpenAiStreamingChatModel streaming = OpenAiStreamingChatModel.builder().baseUrl(server.url() + "/v1").apiKey("unused")
                .modelName("bard-s").temperature(0.0).maxTokens(24).build();
        StringBuilder parts = new StringBuilder();
        CompletableFuture<ChatResponse> done = new CompletableFuture<>();
        streaming.chat(ChatRequest.builder().messages(SystemMessage.from("Be brief."), UserMessage.from("Tell me of Verona.")).build(),
                new StreamingChatResponseHandler() {
                    @Override
                    public void onPartialResponse(String partial) {
                        parts.append(partial);
                    }

                    @Override
                    public void onCompleteResponse(ChatResponse response) {
                        done.complete(response);
                    }

                    @Override
                    public void onError(Throwable error) {
                        done.completeExceptionally(error);
                    }
                });
        ChatResponse complete = done.get(60, TimeUnit.SECONDS);
        assertEquals(want2.text(), parts.toString());
        assertEquals(want2.text(), complete.aiMessage().text());
    }

    @Test
    void aTemplateThatRaisesIsA400WithItsMessage() throws Exception {
        ChatTemplate strict = ChatTemplate.of("{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must "
                + "start with a user message.') }}{% endif %}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}",
                null, null);
        try (TandemServer s = TandemServer.start(ServedModels.of(target).withChatTemplate(strict), ServerOptions.defaults().withPort(0),
                new PrintStream(System.err, true))) {
            ServerHarness.Reply r = ServerHarness.post(s.url(), "/v1/chat/completions",
                    "{\"messages\": [{\"role\": \"system\", \"content\": \"x\"}, {\"role\": \"user\", \"content\": \"hi\"}]}");
            String m = BadRequestsTest.refused(r, 400, "messages", null);
            assertTrue(m.contains("Conversations must start with a user message"), m);
            ServerHarness.Reply ok = ServerHarness.post(s.url(), "/v1/chat/completions",
                    "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 2, \"temperature\": 0}");
            assertEquals(200, ok.status(), ok.raw().body());
            assertEquals("chat.completion", ok.body().get("object").asText());
        }
    }
}
