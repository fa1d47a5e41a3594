package dev.tandem.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeType;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.NamedMethods;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.chat.ChatMessage;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The fields of an OpenAI completion or chat request, checked and mapped onto Tandem's: sampling (a field left
 * out takes the model's {@code generation_config.json} default, as {@code tandem generate} does; greedy when it has none)
 * ({@code temperature}, {@code top_p}, and Tandem's {@code top_k}, {@code min_p}, {@code repetition_penalty}),
 * {@code max_tokens} (or {@code max_completion_tokens}), {@code stop}, {@code seed}, {@code n} (choice i on RNG
 * stream i), {@code logprobs}/{@code top_logprobs}, {@code stream}/{@code stream_options.include_usage}, and
 * Tandem's {@code method}, {@code draft_length} and {@code ignore_eos}. Fields Tandem cannot honour
 * ({@code tools}, {@code logit_bias}, non-zero penalties, {@code echo}, {@code best_of} above 1, {@code suffix},
 * a non-text {@code response_format}) are refused rather than ignored; other unknown fields are ignored, as
 * OpenAI-compatible servers do. Every refusal is an {@link ApiException} naming the field.
 */
final class RequestReader {

    /** The most choices ({@code n}) one request may ask for. */
    static final int MAX_CHOICES = 16;
    /** The most stop strings. */
    static final int MAX_STOPS = 16;

    private static final Set<String> UNSUPPORTED_IF_PRESENT = Set.of("tools", "tool_choice", "functions", "function_call");

    /** A request read: its choices' generation requests (prompt still to be given) and how to decode and answer. */
    record Common(int maxTokens, boolean maxTokensGiven, SamplingParams sampling, List<String> stop, int choices,
                  boolean stream, boolean includeUsage, int topLogprobs, boolean logprobs, String method,
                  Integer draftLength, boolean ignoreEos) {

        /** The generation request of choice {@code index} for this prompt (text or ids). */
        GenerationRequest request(String prompt, int[] ids, int maxTokens, int index) {
            GenerationRequest r = prompt != null ? GenerationRequest.of(prompt) : GenerationRequest.ofIds(ids);
            r = r.withMaxTokens(maxTokens).withSampling(sampling).withStop(stop).withStreamId(index)
                    .withLogprobs(logprobs ? Math.max(1, topLogprobs) : 0);
            return ignoreEos ? r.withEosTokenIds(List.of()) : r;
        }
    }

    private final ServedModels models;
    private final ServerOptions options;
    /** The model author's sampling defaults (generation_config.json), for fields a request leaves out. */
    private final SamplingParams defaults;

    RequestReader(ServedModels models, ServerOptions options) {
        this.models = models;
        this.options = options;
        this.defaults = GenerationRequest.withModelDefaults(models.target(), "", 0).sampling();
    }

    /** The body as a JSON object, or a 400. */
    static JsonNode object(JsonNode body) {
        if (body == null || !body.isObject()) {
            throw ApiException.invalid(null, "the request body must be a JSON object.");
        }
        return body;
    }

    /** Checks {@code model} (absent means the served model). */
    void checkModel(JsonNode body, String served) {
        JsonNode m = body.get("model");
        if (m == null || m.isNull()) {
            return;
        }
        if (!m.isTextual()) {
            throw ApiException.invalid("model", "'model' must be a string.");
        }
        if (!m.asText().equals(served)) {
            throw ApiException.invalid("model", "model_not_found", "the model \"" + m.asText() + "\" is not served here; "
                    + "this endpoint serves \"" + served + "\" (GET /v1/models lists them).");
        }
    }

    /** The fields both endpoints share; {@code chat} reads chat's logprobs form and max_completion_tokens. */
    Common common(JsonNode body, boolean chat) {
        checkModel(body, models.modelId());
        for (String f : UNSUPPORTED_IF_PRESENT) {
            JsonNode v = body.get(f);
            if (v != null && !v.isNull() && !(v.isArray() && v.isEmpty()) && !(f.equals("tool_choice") && "none".equals(v.asText()))) {
                throw ApiException.invalid(f, "'" + f + "' is not supported: Tandem does not call tools.");
            }
        }
        for (String f : List.of("frequency_penalty", "presence_penalty")) {
            Double p = number(body, f, -2, 2);
            if (p != null && p != 0) {
                throw ApiException.invalid(f, "'" + f + "' is not supported (only 0); use repetition_penalty instead.");
            }
        }
        JsonNode bias = body.get("logit_bias");
        if (bias != null && !bias.isNull() && !(bias.isObject() && bias.isEmpty())) {
            throw ApiException.invalid("logit_bias", "'logit_bias' is not supported.");
        }
        JsonNode format = body.get("response_format");
        if (format != null && !format.isNull()) {
            if (!format.isObject() || !"text".equals(format.path("type").asText())) {
                throw ApiException.invalid("response_format", "'response_format' must be {\"type\": \"text\"}: Tandem does not "
                        + "constrain output to JSON.");
            }
        }
        if (!chat) {
            if (bool(body, "echo", false)) {
                throw ApiException.invalid("echo", "'echo' is not supported.");
            }
            Integer bestOf = integer(body, "best_of", 1, MAX_CHOICES);
            if (bestOf != null && bestOf != 1) {
                throw ApiException.invalid("best_of", "'best_of' above 1 is not supported.");
            }
            JsonNode suffix = body.get("suffix");
            if (suffix != null && !suffix.isNull()) {
                throw ApiException.invalid("suffix", "'suffix' is not supported.");
            }
        }

        Integer maxTokens = integer(body, "max_tokens", 1, Integer.MAX_VALUE);
        if (chat && maxTokens == null) {
            maxTokens = integer(body, "max_completion_tokens", 1, Integer.MAX_VALUE);
        }
        if (maxTokens != null && maxTokens > options.maxTokensCap()) {
            throw ApiException.invalid(chat && body.has("max_completion_tokens") && !body.has("max_tokens") ? "max_completion_tokens"
                    : "max_tokens", "max_tokens is " + maxTokens + ", more than this server allows per choice ("
                    + options.maxTokensCap() + ", tandem serve --max-tokens-cap).");
        }
        Double temperature = number(body, "temperature", 0, 2);
        Double topP = number(body, "top_p", 0, 1);
        if (topP != null && topP == 0) {
            throw ApiException.invalid("top_p", "'top_p' must be above 0 and at most 1, but was 0.");
        }
        Integer topK = integer(body, "top_k", 0, Integer.MAX_VALUE);
        Double minP = number(body, "min_p", 0, 1);
        if (minP != null && minP == 1) {
            throw ApiException.invalid("min_p", "'min_p' must be at least 0 and below 1, but was 1.");
        }
        Double repetition = number(body, "repetition_penalty", 0, Double.MAX_VALUE);
        if (repetition != null && repetition == 0) {
            throw ApiException.invalid("repetition_penalty", "'repetition_penalty' must be above 0, but was 0.");
        }
        Long seed = longValue(body, "seed");
        // Fields left out take the model author's defaults, as tandem generate does.
        SamplingParams d = defaults;
        SamplingParams sampling = new SamplingParams(
                temperature == null ? d.temperature() : temperature.floatValue(),
                topK == null ? d.topK() : topK,
                topP == null ? d.topP() : topP.floatValue(),
                minP == null ? d.minP() : minP.floatValue(),
                repetition == null ? d.repetitionPenalty() : repetition.floatValue(),
                seed != null ? seed : ThreadLocalRandom.current().nextLong());

        List<String> stop = stops(body);
        Integer n = integer(body, "n", 1, MAX_CHOICES);
        boolean stream = bool(body, "stream", false);
        boolean includeUsage = false;
        JsonNode so = body.get("stream_options");
        if (so != null && !so.isNull()) {
            if (!so.isObject()) {
                throw ApiException.invalid("stream_options", "'stream_options' must be an object.");
            }
            if (!stream) {
                throw ApiException.invalid("stream_options", "'stream_options' is only allowed with \"stream\": true.");
            }
            includeUsage = bool(so, "include_usage", false);
        }

        boolean logprobs;
        int top;
        if (chat) {
            logprobs = bool(body, "logprobs", false);
            Integer t = integer(body, "top_logprobs", 0, 20);
            if (t != null && !logprobs) {
                throw ApiException.invalid("top_logprobs", "'top_logprobs' needs \"logprobs\": true.");
            }
            top = t == null ? 0 : t;
        } else {
            Integer t = integer(body, "logprobs", 0, 20);
            logprobs = t != null;
            top = t == null ? 0 : t;
        }

        String method = options.defaultMethod();
        JsonNode m = body.get("method");
        if (m != null && !m.isNull()) {
            if (!m.isTextual()) {
                throw ApiException.invalid("method", "'method' must be a string.");
            }
            method = m.asText();
        }
        if (!NamedMethods.NAMES.contains(method)) {
            throw ApiException.invalid("method", "unknown method \"" + method + "\"; this server decodes with "
                    + String.join(", ", NamedMethods.available(models.draft() != null)) + ".");
        }
        if (NamedMethods.WITH_DRAFT.contains(method) && models.draft() == null) {
            throw ApiException.invalid("method", "method \"" + method + "\" needs a draft model, and this server has none "
                    + "(tandem serve --draft DIR); it decodes with " + String.join(", ", NamedMethods.available(false)) + ".");
        }
        Integer draftLength = integer(body, "draft_length", 1, 64);
        boolean ignoreEos = bool(body, "ignore_eos", false);
        return new Common(maxTokens == null ? (chat ? options.maxTokensCap() : 16) : maxTokens, maxTokens != null, sampling,
                stop, n == null ? 1 : n, stream, includeUsage, top, logprobs, method, draftLength, ignoreEos);
    }

    /** The decoding strategy of a read request. */
    DecodingStrategy strategy(Common c) {
        try {
            return NamedMethods.create(c.method(), models.target(), models.draft(), c.draftLength());
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid("method", e.getMessage());
        }
    }

    /** A completion request's prompts: a string, an array of strings, an array of token ids or of such arrays. */
    static List<Object> prompts(JsonNode body) {
        JsonNode p = body.get("prompt");
        if (p == null || p.isNull()) {
            throw ApiException.invalid("prompt", "'prompt' is required.");
        }
        List<Object> out = new ArrayList<>();
        if (p.isTextual()) {
            out.add(p.asText());
        } else if (p.isArray() && !p.isEmpty() && p.get(0).isIntegralNumber()) {
            out.add(ids(p, "prompt"));
        } else if (p.isArray() && !p.isEmpty()) {
            for (JsonNode e : p) {
                if (e.isTextual()) {
                    out.add(e.asText());
                } else if (e.isArray()) {
                    out.add(ids(e, "prompt"));
                } else {
                    throw ApiException.invalid("prompt", "'prompt' must be a string, an array of strings, or token ids.");
                }
            }
        } else {
            throw ApiException.invalid("prompt", "'prompt' must be a string, an array of strings, or token ids (a non-empty array).");
        }
        if (out.size() > MAX_CHOICES) {
            throw ApiException.invalid("prompt", "at most " + MAX_CHOICES + " prompts per request, but " + out.size() + " were given.");
        }
        return out;
    }

    private static int[] ids(JsonNode a, String field) {
        int[] ids = new int[a.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode e = a.get(i);
            if (!e.isIntegralNumber() || !e.canConvertToInt()) {
                throw ApiException.invalid(field, "token ids in '" + field + "' must be integers.");
            }
            ids[i] = e.asInt();
        }
        return ids;
    }

    /** A chat request's messages: role and text content (a string, or an array of {"type": "text"} parts). */
    static List<ChatMessage> messages(JsonNode body) {
        JsonNode ms = body.get("messages");
        if (ms == null || !ms.isArray() || ms.isEmpty()) {
            throw ApiException.invalid("messages", "'messages' must be a non-empty array.");
        }
        List<ChatMessage> out = new ArrayList<>();
        for (int i = 0; i < ms.size(); i++) {
            JsonNode m = ms.get(i);
            String where = "messages[" + i + "]";
            if (!m.isObject()) {
                throw ApiException.invalid(where, "'" + where + "' must be an object with a role and content.");
            }
            JsonNode role = m.get("role");
            if (role == null || !role.isTextual() || role.asText().isBlank()) {
                throw ApiException.invalid(where + ".role", "'" + where + ".role' must be a non-empty string.");
            }
            if (m.hasNonNull("tool_calls") || m.hasNonNull("function_call")) {
                throw ApiException.invalid(where, "'" + where + "' carries tool calls, which Tandem does not support.");
            }
            JsonNode content = m.get("content");
            String text;
            if (content == null || content.isNull()) {
                text = "";
            } else if (content.isTextual()) {
                text = content.asText();
            } else if (content.isArray()) {
                StringBuilder sb = new StringBuilder();
                for (JsonNode part : content) {
                    if (!part.isObject() || !"text".equals(part.path("type").asText()) || !part.path("text").isTextual()) {
                        throw ApiException.invalid(where + ".content", "'" + where + ".content' may hold only text parts "
                                + "({\"type\": \"text\", \"text\": ...}); Tandem's models read text only.");
                    }
                    sb.append(part.get("text").asText());
                }
                text = sb.toString();
            } else {
                throw ApiException.invalid(where + ".content", "'" + where + ".content' must be a string or an array of text parts.");
            }
            out.add(new ChatMessage(role.asText(), text));
        }
        return out;
    }

    private static List<String> stops(JsonNode body) {
        JsonNode s = body.get("stop");
        if (s == null || s.isNull()) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        if (s.isTextual()) {
            out.add(s.asText());
        } else if (s.isArray()) {
            for (JsonNode e : s) {
                if (!e.isTextual()) {
                    throw ApiException.invalid("stop", "'stop' must be a string or an array of strings.");
                }
                out.add(e.asText());
            }
        } else {
            throw ApiException.invalid("stop", "'stop' must be a string or an array of strings.");
        }
        if (out.size() > MAX_STOPS) {
            throw ApiException.invalid("stop", "at most " + MAX_STOPS + " stop strings, but " + out.size() + " were given.");
        }
        for (String x : out) {
            if (x.isEmpty()) {
                throw ApiException.invalid("stop", "a stop string must not be empty.");
            }
        }
        return out;
    }

    static Double number(JsonNode body, String field, double min, double max) {
        JsonNode v = body.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isNumber()) {
            throw ApiException.invalid(field, "'" + field + "' must be a number, but was " + kind(v) + ".");
        }
        double d = v.asDouble();
        if (!(d >= min && d <= max)) {
            throw ApiException.invalid(field, "'" + field + "' must be between " + fmt(min) + " and " + fmt(max) + ", but was "
                    + v.asText() + ".");
        }
        return d;
    }

    static Integer integer(JsonNode body, String field, int min, int max) {
        JsonNode v = body.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isIntegralNumber() || !v.canConvertToInt()) {
            throw ApiException.invalid(field, "'" + field + "' must be an integer, but was " + kind(v) + ".");
        }
        int i = v.asInt();
        if (i < min || i > max) {
            throw ApiException.invalid(field, "'" + field + "' must be " + (max == Integer.MAX_VALUE ? "at least " + min
                    : "between " + min + " and " + max) + ", but was " + i + ".");
        }
        return i;
    }

    private static Long longValue(JsonNode body, String field) {
        JsonNode v = body.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isIntegralNumber() || !v.canConvertToLong()) {
            throw ApiException.invalid(field, "'" + field + "' must be an integer, but was " + kind(v) + ".");
        }
        return v.asLong();
    }

    static boolean bool(JsonNode body, String field, boolean dflt) {
        JsonNode v = body.get(field);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isBoolean()) {
            throw ApiException.invalid(field, "'" + field + "' must be true or false, but was " + kind(v) + ".");
        }
        return v.asBoolean();
    }

    private static String kind(JsonNode v) {
        JsonNodeType t = v.getNodeType();
        return switch (t) {
            case STRING -> "a string";
            case ARRAY -> "an array";
            case OBJECT -> "an object";
            case BOOLEAN -> "a boolean";
            case NUMBER -> v.asText();
            default -> t.name().toLowerCase(java.util.Locale.ROOT);
        };
    }

    private static String fmt(double d) {
        return d == Math.rint(d) && Math.abs(d) < 1e15 ? Long.toString((long) d) : Double.toString(d);
    }
}
