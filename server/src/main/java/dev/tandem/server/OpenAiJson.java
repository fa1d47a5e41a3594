package dev.tandem.server;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.TokenLogprob;
import dev.tandem.transformer.tokenizer.Tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.List;

/** The JSON objects of OpenAI's completion, chat and error responses, as Tandem fills them. */
final class OpenAiJson {
    static final ObjectMapper MAPPER = new ObjectMapper();

    private OpenAiJson() {
    }

    /** {@code {"error": {"message", "type", "param", "code"}}}. */
    static ObjectNode error(ApiException e) {
        ObjectNode root = MAPPER.createObjectNode();
        ObjectNode err = root.putObject("error");
        err.put("message", e.getMessage());
        err.put("type", e.type());
        err.put("param", e.param());
        err.put("code", e.code());
        return root;
    }

    /** OpenAI's finish reasons: {@code stop} (EOS or a stop string), {@code length}, and Tandem's {@code cancelled}. */
    static String finishReason(FinishReason r) {
        return switch (r) {
            case EOS, STOP_STRING -> "stop";
            case MAX_TOKENS, CONTEXT_FULL -> "length";
            case CANCELLED -> "cancelled";
        };
    }

    static ObjectNode usage(int prompt, int completion) {
        ObjectNode u = MAPPER.createObjectNode();
        u.put("prompt_tokens", prompt);
        u.put("completion_tokens", completion);
        u.put("total_tokens", prompt + completion);
        return u;
    }

    /** A response envelope: id, object, created, model and an empty choices array. */
    static ObjectNode envelope(String id, String object, long created, String model) {
        ObjectNode root = MAPPER.createObjectNode();
        root.put("id", id);
        root.put("object", object);
        root.put("created", created);
        root.put("model", model);
        root.putArray("choices");
        return root;
    }

    /** A token's text as logprobs show it: its bytes decoded (a part of a character becomes U+FFFD). */
    static String tokenText(Tokenizer tok, int id) {
        return new String(tok.tokenBytes(id), StandardCharsets.UTF_8);
    }

    private static ArrayNode bytes(Tokenizer tok, int id) {
        ArrayNode a = MAPPER.createArrayNode();
        for (byte b : tok.tokenBytes(id)) {
            a.add(b & 0xff);
        }
        return a;
    }

    /** Chat logprobs: {@code {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}}. */
    static ObjectNode chatLogprobs(Tokenizer tok, List<TokenEvent> events, int top) {
        ObjectNode root = MAPPER.createObjectNode();
        ArrayNode content = root.putArray("content");
        for (TokenEvent e : events) {
            ObjectNode t = content.addObject();
            t.put("token", tokenText(tok, e.token()));
            t.put("logprob", e.logprob());
            t.set("bytes", bytes(tok, e.token()));
            ArrayNode tops = t.putArray("top_logprobs");
            for (TokenLogprob lp : e.topLogprobs().subList(0, Math.min(top, e.topLogprobs().size()))) {
                ObjectNode o = tops.addObject();
                o.put("token", tokenText(tok, lp.token()));
                o.put("logprob", lp.logprob());
                o.set("bytes", bytes(tok, lp.token()));
            }
        }
        return root;
    }

    /**
     * Completion logprobs: {@code tokens}, {@code token_logprobs}, {@code top_logprobs} (token text → logprob) and
     * {@code text_offset} (the offset in the choice's text, counted from {@code offset}, where each token's text starts).
     */
    static ObjectNode completionLogprobs(Tokenizer tok, List<TokenEvent> events, int top, int offset) {
        ObjectNode root = MAPPER.createObjectNode();
        ArrayNode tokens = root.putArray("tokens");
        ArrayNode lps = root.putArray("token_logprobs");
        ArrayNode tops = root.putArray("top_logprobs");
        ArrayNode offsets = root.putArray("text_offset");
        int at = offset;
        for (TokenEvent e : events) {
            tokens.add(tokenText(tok, e.token()));
            lps.add(e.logprob());
            ObjectNode m = tops.addObject();
            for (TokenLogprob lp : e.topLogprobs().subList(0, Math.min(top, e.topLogprobs().size()))) {
                m.put(tokenText(tok, lp.token()), lp.logprob());
            }
            offsets.add(at);
            at += e.textDelta().length();
        }
        return root;
    }
}
