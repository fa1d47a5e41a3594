package dev.tandem.langchain4j;

import dev.langchain4j.agent.tool.ToolSpecification;
import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.ImageContent;
import dev.langchain4j.data.message.SystemMessage;
import dev.langchain4j.data.message.TextContent;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.exception.UnsupportedFeatureException;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ResponseFormat;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.output.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.chat.ChatMessage;
import dev.tandem.transformer.chat.ChatTemplate;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The chat models against what {@code tandem generate} runs: the conversation rendered with the Llama 3 template,
 * encoded without an added BOS, decoded greedily by {@link Generator} on bard-s (its own draft, so every method must
 * give plain decoding's text).
 */
class TandemChatModelTest {
    private static final Path BARD_S = Path.of("../models/bard-s");
    private static final Path LLAMA3 = Path.of("../transformer/src/test/resources/chat/llama3/tokenizer_config.json");
    private static final int MAX = 24;

    private static LanguageModel target;
    private static LanguageModel draft;
    private static TandemEngine tandem;

    @BeforeAll
    static void load() {
        target = ModelLoader.load(BARD_S, ModelLoader.Options.defaults().withThreads(2).withKvTokens(8192));
        draft = ModelLoader.load(BARD_S, ModelLoader.Options.defaults().withKvTokens(8192).withBackend(target.backend()));
        tandem = TandemEngine.of(target, draft);
    }

    @AfterAll
    static void close() {
        tandem.close();
        draft.close();
        target.close();
    }

    @AfterEach
    void everyRequestFreedItsKv() throws InterruptedException {
        // A streaming handler hears onCompleteResponse just before its request's handle closes; give it a moment.
        for (int i = 0; i < 200 && (target.kvCache().usedBlocks() != 0 || draft.kvCache().usedBlocks() != 0); i++) {
            Thread.sleep(10);
        }
        assertEquals(0, target.kvCache().usedBlocks(), "target KV blocks still in use");
        assertEquals(0, draft.kvCache().usedBlocks(), "draft KV blocks still in use");
    }

    private static TandemChatModel chat(String method) {
        return TandemChatModel.builder().engine(tandem).method(method).chatTemplate(LLAMA3).temperature(0.0).maxTokens(MAX).build();
    }

    private static TandemStreamingChatModel streaming(String method) {
        return TandemStreamingChatModel.builder().engine(tandem).method(method).chatTemplate(LLAMA3).temperature(0.0)
                .maxTokens(MAX).build();
    }

    private static List<dev.langchain4j.data.message.ChatMessage> conversation(String question) {
        return List.of(SystemMessage.from("You are a player in a company of actors."),
                UserMessage.from("Who goes there?"), AiMessage.from("A friend to this ground."), UserMessage.from(question));
    }

    /** What {@code tandem generate} gives for the conversation: the rendered prompt's ids decoded plainly. */
    private static GenerationResult expected(String question) {
        List<ChatMessage> messages = ChatSupport.messages(conversation(question));
        String rendered = ChatTemplate.fromFile(LLAMA3).render(messages, true);
        int[] ids = target.tokenizer().encode(rendered);
        return new Generator(target).generate(GenerationRequest.ofIds(ids).withMaxTokens(MAX));
    }

    @Test
    void theTemplateIsLlama3s() {
        String rendered = ChatTemplate.fromFile(LLAMA3).render(ChatSupport.messages(conversation("What news?")), true);
        assertEquals("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a player in a company of actors.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nWho goes there?<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\nA friend to this ground.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nWhat news?<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n", rendered);
    }

    @Test
    void greedyChatIsWhatGenerateGivesTokenForToken() {
        GenerationResult expected = expected("What news?");
        try (TandemChatModel model = chat("plain")) {
            ChatResponse response = model.chat(conversation("What news?"));
            assertFalse(expected.text().isBlank());
            assertEquals(expected.text(), response.aiMessage().text());
            assertEquals(expected.generatedIds().length, response.tokenUsage().outputTokenCount());
            assertEquals(expected.promptIds().length, response.tokenUsage().inputTokenCount());
            assertEquals(expected.generatedIds().length == MAX ? FinishReason.LENGTH : FinishReason.STOP, response.finishReason());
            assertEquals("bard-s", response.modelName());
        }
    }

    @Test
    void everyExactMethodGivesPlainText() {
        String plain = expected("Speak the speech, I pray you.").text();
        for (String method : List.of("speculative", "tree", "ngram", "lookahead")) {
            try (TandemChatModel model = chat(method)) {
                assertEquals(plain, model.chat(conversation("Speak the speech, I pray you.")).aiMessage().text(), method);
            }
        }
    }

    @Test
    void theCallersEngineAndDraftServeAndStayOpen() {
        String plain = expected("What news?").text();
        try (TandemChatModel model = TandemChatModel.builder().engine(tandem.engine()).draftModel(draft).method("speculative")
                .draftLength(3).chatTemplate(LLAMA3).temperature(0.0).maxTokens(MAX).build()) {
            assertEquals(plain, model.chat(conversation("What news?")).aiMessage().text());
        }
        try (TandemChatModel again = chat("plain")) {
            assertEquals(plain, again.chat(conversation("What news?")).aiMessage().text(), "the shared engine is still open");
        }
    }

    @Test
    void aFailureWhileStreamingGoesToOnError() throws Exception {
        TandemStreamingChatModel model = TandemStreamingChatModel.builder().model(target).chatTemplate(LLAMA3).build();
        model.close(); // closes its own engine, not the caller's model
        CompletableFuture<Throwable> error = new CompletableFuture<>();
        model.chat(conversation("What news?"), new StreamingChatResponseHandler() {
            @Override
            public void onCompleteResponse(ChatResponse response) {
                error.complete(null);
            }

            @Override
            public void onError(Throwable e) {
                error.complete(e);
            }
        });
        Throwable e = error.get(60, TimeUnit.SECONDS);
        assertTrue(e != null && e.getMessage().contains("closed"), String.valueOf(e));
        assertEquals(0, target.kvCache().usedBlocks());
    }

    @Test
    void requestParametersOverrideTheDefaults() {
        try (TandemChatModel model = chat("plain")) {
            ChatResponse five = model.chat(ChatRequest.builder().messages(conversation("What news?")).maxOutputTokens(5).build());
            assertEquals(5, five.tokenUsage().outputTokenCount());
            assertEquals(FinishReason.LENGTH, five.finishReason());
            String full = expected("What news?").text();
            assertTrue(full.length() > 4);
            String stop = full.substring(2, 4);
            ChatResponse stopped = model.chat(ChatRequest.builder().messages(conversation("What news?")).stopSequences(List.of(stop)).build());
            assertEquals(full.substring(0, full.indexOf(stop)), stopped.aiMessage().text());
            assertEquals(FinishReason.STOP, stopped.finishReason());
        }
    }

    /** A stream's pieces and its response, or its error. */
    private record Streamed(String pieces, ChatResponse response) {
    }

    private static Streamed stream(TandemStreamingChatModel model, String question) throws Exception {
        StringBuilder pieces = new StringBuilder();
        CompletableFuture<ChatResponse> done = new CompletableFuture<>();
        model.chat(conversation(question), new StreamingChatResponseHandler() {
            @Override
            public void onPartialResponse(String partial) {
                pieces.append(partial);
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
        ChatResponse response = done.get(60, TimeUnit.SECONDS);
        return new Streamed(pieces.toString(), response);
    }

    @Test
    void streamedPiecesJoinToTheCompleteTextAndTheBlockingText() throws Exception {
        try (TandemStreamingChatModel streaming = streaming("plain"); TandemChatModel blocking = chat("plain")) {
            Streamed s = stream(streaming, "What news?");
            assertEquals(s.response().aiMessage().text(), s.pieces());
            assertEquals(blocking.chat(conversation("What news?")).aiMessage().text(), s.pieces());
            assertEquals(expected("What news?").generatedIds().length, s.response().tokenUsage().outputTokenCount());
        }
    }

    @Test
    void concurrentStreamsOfMixedMethodsEachGiveTheirSoloText() throws Exception {
        List<String> questions = List.of("What news?", "Is it the king?", "Where is the prince?", "Who is it that says so?",
                "What, has this thing appeared again tonight?", "Speak to it.", "Stay, illusion!", "Good night, sweet prince.");
        List<String> solo = new ArrayList<>();
        for (String q : questions) {
            solo.add(expected(q).text());
        }
        assertTrue(solo.stream().distinct().count() > 1, "the questions should lead to different answers");
        try (TandemStreamingChatModel plain = streaming("plain"); TandemStreamingChatModel speculative = streaming("speculative");
             TandemStreamingChatModel lookahead = streaming("lookahead");
             ExecutorService pool = Executors.newFixedThreadPool(questions.size())) {
            List<TandemStreamingChatModel> models = List.of(plain, speculative, lookahead);
            List<Future<Streamed>> futures = new ArrayList<>();
            for (int i = 0; i < questions.size(); i++) {
                TandemStreamingChatModel m = models.get(i % models.size());
                String q = questions.get(i);
                futures.add(pool.submit(() -> stream(m, q)));
            }
            for (int i = 0; i < questions.size(); i++) {
                Streamed s = futures.get(i).get(120, TimeUnit.SECONDS);
                assertEquals(solo.get(i), s.pieces(), "stream " + i);
                assertEquals(solo.get(i), s.response().aiMessage().text(), "stream " + i);
            }
        }
    }

    @Test
    void aCancelledStreamEndsQuietlyAndFreesItsMemory() throws Exception {
        try (TandemStreamingChatModel model = TandemStreamingChatModel.builder().engine(tandem).chatTemplate(LLAMA3).temperature(0.0)
                .maxTokens(200).build()) {
            CompletableFuture<String> first = new CompletableFuture<>();
            CompletableFuture<Object> end = new CompletableFuture<>();
            model.chat(conversation("What news?"), new StreamingChatResponseHandler() {
                @Override
                public void onPartialResponse(dev.langchain4j.model.chat.response.PartialResponse partial,
                                              dev.langchain4j.model.chat.response.PartialResponseContext context) {
                    context.streamingHandle().cancel();
                    first.complete(partial.text());
                }

                @Override
                public void onCompleteResponse(ChatResponse response) {
                    end.complete(response);
                }

                @Override
                public void onError(Throwable error) {
                    end.complete(error);
                }
            });
            assertFalse(first.get(60, TimeUnit.SECONDS).isEmpty());
            Thread.sleep(200);
            assertFalse(end.isDone(), "nothing is delivered after a cancel");
        }
    }

    private static void assertOneSentence(Supplier<? extends Exception> thrown) {
        String message = thrown.get().getMessage();
        assertTrue(message.endsWith(".") && !message.substring(0, message.length() - 1).contains(". "), message);
    }

    @Test
    void badInputIsRefusedInOneSentence() {
        ChatTemplate any = ChatTemplate.of("{{ messages }}", null, null);
        assertOneSentence(() -> assertThrows(IllegalArgumentException.class,
                () -> TandemChatModel.builder().engine(tandem).chatTemplate(any).method("beam").build()));
        assertOneSentence(() -> assertThrows(IllegalArgumentException.class,
                () -> TandemChatModel.builder().chatTemplate(any).build()));
        assertOneSentence(() -> assertThrows(IllegalArgumentException.class,
                () -> TandemChatModel.builder().engine(tandem).chatTemplate(any).temperature(-1.0).build()));
        try (TandemChatModel model = TandemChatModel.builder().engine(tandem).chatTemplate(any).build();
             TandemStreamingChatModel streaming = TandemStreamingChatModel.builder().engine(tandem).chatTemplate(any).build()) {
            ToolSpecification tool = ToolSpecification.builder().name("weather").description("the weather").build();
            ChatRequest withTool = ChatRequest.builder().messages(UserMessage.from("Rain?")).toolSpecifications(tool).build();
            assertOneSentence(() -> assertThrows(UnsupportedFeatureException.class, () -> model.chat(withTool)));
            assertOneSentence(() -> assertThrows(UnsupportedFeatureException.class, () -> streaming.chat(withTool, noHandler())));
            UserMessage image = UserMessage.from(TextContent.from("What is this?"), ImageContent.from("https://example.com/a.png"));
            assertOneSentence(() -> assertThrows(UnsupportedFeatureException.class, () -> model.chat(image)));
            ChatRequest cold = ChatRequest.builder().messages(UserMessage.from("Hi")).temperature(-0.5).build();
            assertOneSentence(() -> assertThrows(IllegalArgumentException.class, () -> model.chat(cold)));
            ChatRequest json = ChatRequest.builder().messages(UserMessage.from("Hi")).responseFormat(ResponseFormat.JSON).build();
            assertOneSentence(() -> assertThrows(UnsupportedFeatureException.class, () -> model.chat(json)));
            ChatRequest penalty = ChatRequest.builder().messages(UserMessage.from("Hi")).frequencyPenalty(0.5).build();
            assertOneSentence(() -> assertThrows(UnsupportedFeatureException.class, () -> model.chat(penalty)));
        }
    }

    @Test
    void aModelLoadedFromAPathIsClosedWithIt() {
        try (TandemChatModel model = TandemChatModel.builder().modelPath(BARD_S).threads(1).chatTemplate(LLAMA3).temperature(0.0)
                .maxTokens(MAX).build()) {
            assertEquals(expected("What news?").text(), model.chat(conversation("What news?")).aiMessage().text());
            assertEquals(0, model.tandem().target().kvCache().usedBlocks());
            assertFalse(model.tandem().draft().isPresent());
        }
    }

    private static StreamingChatResponseHandler noHandler() {
        return new StreamingChatResponseHandler() {
            @Override
            public void onCompleteResponse(ChatResponse response) {
            }

            @Override
            public void onError(Throwable error) {
            }
        };
    }
}
