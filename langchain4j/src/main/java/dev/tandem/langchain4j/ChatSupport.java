package dev.tandem.langchain4j;

import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.Content;
import dev.langchain4j.data.message.SystemMessage;
import dev.langchain4j.data.message.TextContent;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.exception.UnsupportedFeatureException;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ChatRequestParameters;
import dev.langchain4j.model.chat.request.DefaultChatRequestParameters;
import dev.langchain4j.model.chat.request.ResponseFormatType;
import dev.langchain4j.model.chat.request.ToolChoice;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.output.FinishReason;
import dev.langchain4j.model.output.TokenUsage;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.chat.ChatMessage;
import dev.tandem.transformer.chat.ChatTemplate;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * What both chat models do: a langchain4j request checked and turned into a {@link GenerationRequest} (messages
 * through the chat template, parameters over the defaults), submitted to the engine with the chosen method, and the
 * result turned into a {@link ChatResponse}. Everything Tandem cannot honour is refused in one sentence.
 */
final class ChatSupport implements AutoCloseable {
    private final TandemEngine tandem;
    private final boolean ownsEngine;
    private final ChatTemplate template;
    private final DecodingStrategy method;
    private final String methodName;
    private final long seed;
    private final String modelName;
    private final ChatRequestParameters defaults;

    ChatSupport(TandemChatBuilder<?> b, TandemEngine tandem, boolean ownsEngine) {
        this.tandem = tandem;
        this.ownsEngine = ownsEngine;
        this.method = tandem.method(b.method, b.draftLength);
        this.methodName = b.method;
        this.seed = b.seed == null ? 0L : b.seed;
        LanguageModel target = tandem.target();
        this.template = resolveTemplate(b, target);
        this.modelName = b.modelName != null ? b.modelName : nameOf(target.directory());
        this.defaults = DefaultChatRequestParameters.builder()
                .modelName(modelName)
                .temperature(b.temperature)
                .topP(b.topP)
                .topK(b.topK)
                .maxOutputTokens(b.maxTokens)
                .stopSequences(b.stopSequences == null ? List.of() : b.stopSequences)
                .build();
        toGeneration(defaults, new int[] {0}); // builder defaults out of range fail here, at build time
    }

    private static ChatTemplate resolveTemplate(TandemChatBuilder<?> b, LanguageModel target) {
        if (b.chatTemplate != null) {
            return b.chatTemplate;
        }
        if (b.chatTemplatePath != null) {
            return ChatTemplate.fromFile(b.chatTemplatePath);
        }
        return ChatTemplate.forModel(target.directory()).orElseThrow(() -> new IllegalArgumentException(
                "the model " + target.directory() + " has no chat template (tokenizer_config.json chat_template or GGUF "
                        + "tokenizer.chat_template); give one with chatTemplate(Path)."));
    }

    private static String nameOf(Path p) {
        Path name = p.toAbsolutePath().normalize().getFileName();
        return name == null ? p.toString() : name.toString();
    }

    ChatRequestParameters defaults() {
        return defaults;
    }

    String modelName() {
        return modelName;
    }

    String methodName() {
        return methodName;
    }

    TandemEngine tandem() {
        return tandem;
    }

    /**
     * The request as Tandem runs it: its parameters over the defaults, its messages rendered and encoded.
     *
     * @throws UnsupportedFeatureException for tools, JSON response formats, penalties and non-text content
     * @throws IllegalArgumentException    for a value out of range or a model name this model does not serve
     */
    GenerationRequest prepare(ChatRequest request) {
        ChatRequestParameters p = defaults.overrideWith(request.parameters());
        List<ChatMessage> messages = messages(request.messages());
        toGeneration(p, new int[] {0}); // refusals and ranges before the template's work
        String text = template.render(messages, true);
        // Special tokens recognised, no BOS added (the template writes bos_token itself).
        return toGeneration(p, ChatTemplate.promptIds(tandem.target().tokenizer(), text));
    }

    private GenerationRequest toGeneration(ChatRequestParameters p, int[] ids) {
        if (p.modelName() != null && !p.modelName().equals(modelName)) {
            throw new IllegalArgumentException("this chat model serves \"" + modelName + "\", not \"" + p.modelName() + "\".");
        }
        if (p.toolSpecifications() != null && !p.toolSpecifications().isEmpty()) {
            throw new UnsupportedFeatureException("Tandem's chat models do not support tools (tool specifications were given).");
        }
        if (p.toolChoice() == ToolChoice.REQUIRED) {
            throw new UnsupportedFeatureException("Tandem's chat models do not support tools (tool choice REQUIRED was given).");
        }
        if (p.responseFormat() != null && p.responseFormat().type() != ResponseFormatType.TEXT) {
            throw new UnsupportedFeatureException("Tandem's chat models answer in text only; a " + p.responseFormat().type()
                    .name().toLowerCase(Locale.ROOT) + " response format (constrained decoding) is not supported.");
        }
        refusePenalty("frequency", p.frequencyPenalty());
        refusePenalty("presence", p.presencePenalty());
        GenerationRequest base = GenerationRequest.withModelDefaults(tandem.target(), "", seed);
        SamplingParams s = base.sampling();
        if (p.temperature() != null) {
            s = s.withTemperature(toFloat("temperature", p.temperature()));
        }
        if (p.topP() != null) {
            s = s.withTopP(toFloat("topP", p.topP()));
        }
        if (p.topK() != null) {
            s = s.withTopK(p.topK());
        }
        int maxTokens = p.maxOutputTokens() != null ? p.maxOutputTokens() : base.maxTokens();
        List<String> stop = p.stopSequences() == null ? List.of() : p.stopSequences();
        return GenerationRequest.ofIds(ids).withSampling(s).withMaxTokens(maxTokens).withStop(stop);
    }

    private static float toFloat(String name, double v) {
        if (!Double.isFinite(v)) {
            throw new IllegalArgumentException(name + " must be a finite number, but was " + v + ".");
        }
        return (float) v;
    }

    private static void refusePenalty(String name, Double value) {
        if (value != null && value != 0.0) {
            throw new UnsupportedFeatureException("Tandem's chat models do not support a " + name + " penalty (" + value
                    + " was given); leave it unset or 0.");
        }
    }

    /** langchain4j's messages as the template reads them; anything but text is refused. */
    static List<ChatMessage> messages(List<dev.langchain4j.data.message.ChatMessage> in) {
        List<ChatMessage> out = new ArrayList<>(in.size());
        for (dev.langchain4j.data.message.ChatMessage m : in) {
            out.add(switch (m) {
                case SystemMessage s -> ChatMessage.system(s.text());
                case UserMessage u -> ChatMessage.user(userText(u));
                case AiMessage a -> {
                    if (a.hasToolExecutionRequests()) {
                        throw new UnsupportedFeatureException("Tandem's chat models do not support tools (an AiMessage "
                                + "carries tool execution requests).");
                    }
                    yield ChatMessage.assistant(a.text() == null ? "" : a.text());
                }
                default -> throw new UnsupportedFeatureException("Tandem's chat models take system, user and AI messages "
                        + "only, not a " + m.type() + " message.");
            });
        }
        return out;
    }

    private static String userText(UserMessage u) {
        StringBuilder text = new StringBuilder();
        for (Content c : u.contents()) {
            if (!(c instanceof TextContent t)) {
                throw new UnsupportedFeatureException("Tandem's chat models read text only, but a user message holds "
                        + c.type().name().toLowerCase(Locale.ROOT) + " content.");
            }
            if (!text.isEmpty()) {
                text.append('\n');
            }
            text.append(t.text());
        }
        return text.toString();
    }

    EngineHandle submit(GenerationRequest request, Consumer<TokenEvent> listener) {
        return tandem.engine().submit(request, method, listener);
    }

    ChatResponse response(GenerationResult r) {
        FinishReason reason = switch (r.finishReason()) {
            case EOS, STOP_STRING -> FinishReason.STOP;
            case MAX_TOKENS, CONTEXT_FULL -> FinishReason.LENGTH;
            case CANCELLED -> FinishReason.OTHER;
        };
        return ChatResponse.builder()
                .aiMessage(AiMessage.from(r.text()))
                .tokenUsage(new TokenUsage(r.usage().promptTokens(), r.usage().completionTokens()))
                .finishReason(reason)
                .modelName(modelName)
                .build();
    }

    @Override
    public void close() {
        if (ownsEngine) {
            tandem.close();
        }
    }
}
