package dev.tandem.transformer.chat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.tree.Node;

import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.weights.GgufFile;
import dev.tandem.transformer.weights.GgufValue;
import jinjava.javax.el.CompositeELResolver;

/**
 * A model's chat template: the Jinja text of {@code tokenizer_config.json}'s {@code chat_template}, rendered
 * as Hugging Face transformers' {@code apply_chat_template(..., tokenize=False)} renders it with Python Jinja2:
 * {@code ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])}, the
 * globals {@code raise_exception(msg)} and {@code strftime_now(fmt)}, the filter {@code tojson}
 * ({@code json.dumps(x, ensure_ascii=False)}). Parsed once at construction; thread-safe.
 *
 * <p>Rendered by jinjava, with what Jinja2 has and jinjava lacks filled in: Python's {@code str} methods
 * ({@code startswith}, {@code endswith}, {@code strip/lstrip/rstrip(chars)}, {@code split(sep)} with a literal
 * separator, {@code upper}, {@code lower}, {@code replace}, {@code title}, ...) and {@code dict.get/items/keys/values};
 * Python-like printing of {@code True}/{@code False} and lists. One source rewrite, as jinjava cannot parse
 * extended slices: {@code [::-1]} becomes {@code |reverse} (so {@code messages[::-1]} is
 * {@code messages|reverse}); other slices ({@code [1:]}) are jinjava's own. Undefined variables are falsy and
 * not {@code defined}, as in Jinja; {@code tools} is left undefined. Known difference: a boolean printed by
 * {@code {{ ... }}} is {@code true}/{@code false}, where Python prints {@code True}/{@code False}. The texts the
 * tests compare with come from Python Jinja2 ({@code tools/chat/render_expected.py}).
 */
public final class ChatTemplate {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern REVERSE_SLICE = Pattern.compile("\\[\\s*:\\s*:\\s*-\\s*1\\s*\\]");
    private static final Jinjava JINJAVA = newJinjava();
    /** Validation mode evaluates the branches not taken too, to find syntax errors in their expressions. */
    private static final JinjavaConfig VALIDATION = config(true);

    private final String source;
    private final String bosToken;
    private final String eosToken;
    private final Node root;

    private ChatTemplate(String source, String bosToken, String eosToken, String where) {
        this.source = source;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
        this.root = parse(source, where);
    }

    /**
     * A template from its Jinja source and the special tokens it may use ({@code null}: the empty string).
     *
     * @throws TandemException (one sentence) if the template does not parse
     */
    public static ChatTemplate of(String source, String bosToken, String eosToken) {
        Objects.requireNonNull(source, "source");
        return new ChatTemplate(source, bosToken == null ? "" : bosToken, eosToken == null ? "" : eosToken,
                "the chat template");
    }

    /**
     * The template of a model: for a directory its {@code tokenizer_config.json}'s {@code chat_template}, for
     * a GGUF file its {@code tokenizer.chat_template}; empty when the model has none.
     *
     * @throws TandemException (one sentence naming the file and field) if the file is unreadable
     *                         or the template does not parse
     */
    public static Optional<ChatTemplate> forModel(Path model) {
        if (Files.isDirectory(model)) {
            Path config = model.resolve("tokenizer_config.json");
            if (!Files.isRegularFile(config)) {
                return Optional.empty();
            }
            return fromTokenizerConfig(config);
        }
        if (model.getFileName() != null && model.getFileName().toString().toLowerCase(java.util.Locale.ROOT).endsWith(".gguf")) {
            return fromGguf(model);
        }
        throw new TandemException(model + " is neither a model directory nor a .gguf file, so it has no chat template.");
    }

    /**
     * A template from a file: a {@code tokenizer_config.json} (any {@code .json}: its {@code chat_template} and
     * special tokens) or a Jinja file (anything else, e.g. {@code .jinja}: no special tokens).
     *
     * @throws TandemException (one sentence) if the file is unreadable, a JSON file has no {@code chat_template},
     *                         or the template does not parse
     */
    public static ChatTemplate fromFile(Path file) {
        if (file.getFileName() != null && file.getFileName().toString().toLowerCase(java.util.Locale.ROOT).endsWith(".json")) {
            return fromTokenizerConfig(file).orElseThrow(() -> new TandemException(
                    file + " has no chat_template field, so it gives no chat template."));
        }
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException | RuntimeException e) {
            throw new TandemException("Cannot read the chat template " + file + ": " + e.getMessage() + ".", e);
        }
        return new ChatTemplate(text, "", "", file.toString());
    }

    private static Optional<ChatTemplate> fromTokenizerConfig(Path config) {
        JsonNode root;
        try {
            root = JSON.readTree(config.toFile());
        } catch (IOException | RuntimeException e) {
            throw new TandemException("Cannot read " + config + " as JSON: " + sentence(e.getMessage()), e);
        }
        if (root == null || !root.isObject()) {
            throw new TandemException(config + " is not a JSON object.");
        }
        JsonNode template = root.get("chat_template");
        if (template == null || template.isNull()) {
            return Optional.empty();
        }
        String text;
        String field = "chat_template";
        if (template.isTextual()) {
            text = template.asText();
        } else if (template.isArray()) {
            text = null;
            for (JsonNode entry : template) {
                if (entry.isObject() && "default".equals(entry.path("name").asText(null)) && entry.path("template").isTextual()) {
                    text = entry.get("template").asText();
                }
            }
            if (text == null) {
                throw new TandemException(config + ": chat_template is a list of named templates without one named default.");
            }
            field = "chat_template's default entry";
        } else {
            throw new TandemException(config + ": chat_template is neither a string nor a list of {name, template}.");
        }
        String bos = specialToken(root, "bos_token", config);
        String eos = specialToken(root, "eos_token", config);
        return Optional.of(new ChatTemplate(text, bos, eos, config + "'s " + field));
    }

    private static String specialToken(JsonNode root, String field, Path config) {
        JsonNode t = root.get(field);
        if (t == null || t.isNull()) {
            return "";
        }
        if (t.isTextual()) {
            return t.asText();
        }
        if (t.isObject() && t.path("content").isTextual()) {
            return t.get("content").asText();
        }
        throw new TandemException(config + ": " + field + " is neither a string nor an object with a string content.");
    }

    private static Optional<ChatTemplate> fromGguf(Path file) {
        try (GgufFile gguf = GgufFile.open(file)) {
            Map<String, GgufValue> meta = gguf.metadata();
            GgufValue template = meta.get("tokenizer.chat_template");
            if (template == null) {
                return Optional.empty();
            }
            if (template.type() != GgufValue.Type.STRING) {
                throw new TandemException(file + ": metadata tokenizer.chat_template is " + template.describe() + ", not a string.");
            }
            List<GgufValue> tokens = meta.containsKey("tokenizer.ggml.tokens") ? meta.get("tokenizer.ggml.tokens").elements() : List.of();
            String bos = ggufToken(meta, "tokenizer.ggml.bos_token_id", tokens, file);
            String eos = ggufToken(meta, "tokenizer.ggml.eos_token_id", tokens, file);
            return Optional.of(new ChatTemplate((String) template.value(), bos, eos, file + "'s tokenizer.chat_template"));
        }
    }

    private static String ggufToken(Map<String, GgufValue> meta, String key, List<GgufValue> tokens, Path file) {
        GgufValue v = meta.get(key);
        if (v == null) {
            return "";
        }
        Long id = v.integerOrNull();
        if (id == null || id < 0 || id >= tokens.size() || tokens.get(id.intValue()).type() != GgufValue.Type.STRING) {
            throw new TandemException(file + ": metadata " + key + " is " + v.describe() + ", which names no token of tokenizer.ggml.tokens.");
        }
        return (String) tokens.get(id.intValue()).value();
    }

    /**
     * The conversation as the prompt text the model was trained on, with the variables transformers passes:
     * {@code messages}, {@code add_generation_prompt}, {@code bos_token}, {@code eos_token} ({@code tools}
     * undefined).
     *
     * @throws ChatTemplateException in one sentence, if the template raises an exception or fails to render
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, Map.of());
    }

    /**
     * {@link #render(List, boolean)} with more variables, as transformers' {@code apply_chat_template(**kwargs)}
     * passes them (say {@code enable_thinking=false} for Qwen 3); they take precedence over the standard ones.
     * Values are Strings, Numbers, Booleans, Lists and Maps of those.
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, ?> extraVariables) {
        List<Map<String, Object>> list = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put("content", m.content());
            list.add(map);
        }
        Map<String, Object> bindings = new HashMap<>();
        bindings.put("messages", list);
        bindings.put("add_generation_prompt", addGenerationPrompt);
        bindings.put("bos_token", bosToken);
        bindings.put("eos_token", eosToken);
        bindings.putAll(extraVariables);
        return renderBindings(bindings);
    }

    private String renderBindings(Map<String, Object> bindings) {
        JinjavaConfig config = JINJAVA.getGlobalConfig();
        Context context = new Context(JINJAVA.getGlobalContext(), bindings, config.getDisabled());
        JinjavaInterpreter interpreter = config.getInterpreterFactory().newInstance(JINJAVA, context, config);
        String out;
        List<TemplateError> errors;
        TemplateGlobals.RAISED.remove();
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            out = interpreter.render(root);
            errors = interpreter.getErrorsCopy();
        } catch (RuntimeException e) {
            String raised = TemplateGlobals.RAISED.get();
            if (raised != null) {
                throw new ChatTemplateException("The chat template raised an exception: " + sentence(raised), e);
            }
            throw new ChatTemplateException("The chat template failed to render: " + sentence(e.getMessage()), e);
        } finally {
            JinjavaInterpreter.popCurrent();
        }
        String raised = TemplateGlobals.RAISED.get();
        TemplateGlobals.RAISED.remove();
        if (raised != null) {
            throw new ChatTemplateException("The chat template raised an exception: " + sentence(raised));
        }
        for (TemplateError e : errors) {
            if (e.getSeverity() == TemplateError.ErrorType.FATAL) {
                throw new ChatTemplateException("The chat template failed to render at line " + e.getLineno() + ": "
                        + sentence(e.getMessage()));
            }
        }
        return out;
    }

    /**
     * The prompt ids of a rendered conversation, as transformers' {@code apply_chat_template(tokenize=True)}
     * makes them: the text encoded with special tokens recognised ({@code <|im_start|>} is one id) and
     * nothing added ({@link Tokenizer#withSpecialTokens} is not applied; the template writes
     * {@code bos_token} itself where the model wants one). The one path from chat messages to prompt ids of
     * the CLI, the HTTP server and the langchain4j module.
     */
    public static int[] promptIds(Tokenizer tokenizer, String rendered) {
        return tokenizer.encode(rendered, true);
    }

    /** {@link #render} then {@link #promptIds(Tokenizer, String)}. */
    public int[] promptIds(Tokenizer tokenizer, List<ChatMessage> messages, boolean addGenerationPrompt) {
        return promptIds(tokenizer, render(messages, addGenerationPrompt));
    }

    public String source() {
        return source;
    }

    public String bosToken() {
        return bosToken;
    }

    public String eosToken() {
        return eosToken;
    }

    // ---- jinjava ----

    private static JinjavaConfig config(boolean validation) {
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PythonMethods());
        resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        LegacyOverrides overrides = LegacyOverrides.newBuilder()
                .withUseTrimmingForNotesAndExpressions(true)
                .withParseWhitespaceControlStrictly(true)
                .withUseNaturalOperatorPrecedence(true)
                .withKeepNullableLoopValues(true)
                .withUsePyishObjectMapper(true)
                .withAllowAdjacentTextNodes(true)
                .withWhitespaceRequiredWithinTokens(false)
                .build();
        return JinjavaConfig.newBuilder()
                .withValidationMode(validation)
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withFailOnUnknownTokens(false)
                .withElResolver(resolver)
                .withLegacyOverrides(overrides)
                .withMaxOutputSize(64L << 20)
                .build();
    }

    private static Jinjava newJinjava() {
        Jinjava jinjava = new Jinjava(config(false));
        try {
            java.lang.reflect.Method raise = TemplateGlobals.class.getMethod("raiseException", Object.class);
            java.lang.reflect.Method now = TemplateGlobals.class.getMethod("strftimeNow", Object.class);
            raise.setAccessible(true); // a package-private class
            now.setAccessible(true);
            jinjava.registerFunction(new ELFunctionDefinition("", "raise_exception", raise));
            jinjava.registerFunction(new ELFunctionDefinition("", "strftime_now", now));
        } catch (NoSuchMethodException e) {
            throw new AssertionError(e);
        }
        jinjava.registerFilter(new TemplateGlobals.ToJson());
        return jinjava;
    }

    /**
     * The source as jinjava can parse it: extended slices {@code [::-1]} as {@code |reverse}, and the value of
     * each keyword argument of a call in parentheses ({@code namespace(i=messages|length - 1)} as
     * {@code namespace(i=(messages|length - 1))}), since jinjava binds {@code name=value} tighter than the
     * operators in the value.
     */
    static String rewrite(String source) {
        return parenthesizeKeywordArguments(REVERSE_SLICE.matcher(source).replaceAll(Matcher.quoteReplacement("|reverse")));
    }

    private static String parenthesizeKeywordArguments(String s) {
        StringBuilder out = new StringBuilder(s.length() + 16);
        int i = 0;
        int n = s.length();
        while (i < n) {
            int open = nextCode(s, i);
            if (open < 0) {
                out.append(s, i, n);
                break;
            }
            out.append(s, i, open + 2);
            String close = s.charAt(open + 1) == '{' ? "}}" : "%}";
            i = open + 2;
            boolean macro = s.startsWith("macro", skipSpace(s, s.charAt(i) == '-' || s.charAt(i) == '+' ? i + 1 : i))
                    || s.startsWith("call", skipSpace(s, s.charAt(i) == '-' || s.charAt(i) == '+' ? i + 1 : i));
            // inside one expression or tag: brackets, strings, keyword arguments
            java.util.ArrayDeque<Character> brackets = new java.util.ArrayDeque<>();
            java.util.ArrayDeque<Boolean> wrapped = new java.util.ArrayDeque<>();
            while (i < n && !(brackets.isEmpty() && s.startsWith(close, i))) {
                char c = s.charAt(i);
                if (c == '\'' || c == '"') {
                    int end = i + 1;
                    while (end < n && s.charAt(end) != c) {
                        end += s.charAt(end) == '\\' ? 2 : 1;
                    }
                    end = Math.min(end + 1, n);
                    out.append(s, i, end);
                    i = end;
                    continue;
                }
                if (c == '(' || c == '[' || c == '{') {
                    brackets.push(c);
                    wrapped.push(false);
                } else if ((c == ')' || c == ']' || c == '}') && !brackets.isEmpty()) {
                    if (wrapped.pop()) {
                        out.append(')');
                    }
                    brackets.pop();
                } else if (c == ',' && !brackets.isEmpty() && wrapped.peek()) {
                    out.append(')');
                    wrapped.pop();
                    wrapped.push(false);
                } else if (c == '=' && !macro && !brackets.isEmpty() && brackets.peek() == '(' && !wrapped.peek()
                        && (i + 1 >= n || s.charAt(i + 1) != '=') && keywordBefore(s, i)) {
                    out.append("=(");
                    wrapped.pop();
                    wrapped.push(true);
                    i++;
                    continue;
                }
                out.append(c);
                i++;
            }
        }
        return out.toString();
    }

    /** The next {@code {{} or {@code {%} at or after {@code from}, skipping comments; -1 if none. */
    private static int nextCode(String s, int from) {
        int i = from;
        while (true) {
            int at = s.indexOf('{', i);
            if (at < 0 || at + 1 >= s.length()) {
                return -1;
            }
            char c = s.charAt(at + 1);
            if (c == '{' || c == '%') {
                return at;
            }
            i = at + 1;
        }
    }

    private static int skipSpace(String s, int i) {
        while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
            i++;
        }
        return i;
    }

    /** Whether {@code =} at {@code at} follows {@code (name} or {@code , name}: a keyword argument. */
    private static boolean keywordBefore(String s, int at) {
        int i = at - 1;
        while (i >= 0 && Character.isWhitespace(s.charAt(i))) {
            i--;
        }
        int end = i;
        while (i >= 0 && (Character.isLetterOrDigit(s.charAt(i)) || s.charAt(i) == '_')) {
            i--;
        }
        if (i == end || Character.isDigit(s.charAt(i + 1))) {
            return false;
        }
        while (i >= 0 && Character.isWhitespace(s.charAt(i))) {
            i--;
        }
        if (i < 0) {
            return false;
        }
        char c = s.charAt(i);
        return c == '(' || c == ',';
    }

    private static Node parse(String source, String where) {
        JinjavaConfig config = JINJAVA.getGlobalConfig();
        Context context = new Context(JINJAVA.getGlobalContext(), Map.of(), config.getDisabled());
        JinjavaInterpreter interpreter = config.getInterpreterFactory().newInstance(JINJAVA, context, config);
        JinjavaInterpreter.pushCurrent(interpreter);
        Node root;
        try {
            root = interpreter.parse(rewrite(source));
        } catch (RuntimeException e) {
            throw new TandemException(capitalized(where) + " does not parse as Jinja: " + sentence(e.getMessage()), e);
        } finally {
            JinjavaInterpreter.popCurrent();
        }
        List<TemplateError> errors = new ArrayList<>(interpreter.getErrorsCopy());
        if (errors.stream().noneMatch(e -> e.getSeverity() == TemplateError.ErrorType.FATAL)) {
            errors.addAll(expressionSyntaxErrors(root));
        }
        for (TemplateError e : errors) {
            if (e.getSeverity() == TemplateError.ErrorType.FATAL) {
                throw new TandemException(capitalized(where) + " does not parse as Jinja at line " + e.getLineno() + ": "
                        + sentence(e.getMessage()));
            }
        }
        return root;
    }

    /**
     * The syntax errors of the expressions, which jinjava parses only when it evaluates them: a render of a
     * small conversation in validation mode (both branches of every {@code if}), keeping only syntax errors.
     */
    private static List<TemplateError> expressionSyntaxErrors(Node root) {
        List<Map<String, Object>> messages = List.of(
                new LinkedHashMap<>(Map.of("role", "system", "content", "s")),
                new LinkedHashMap<>(Map.of("role", "user", "content", "u")),
                new LinkedHashMap<>(Map.of("role", "assistant", "content", "a")),
                new LinkedHashMap<>(Map.of("role", "user", "content", "u")));
        Map<String, Object> bindings = new HashMap<>();
        bindings.put("messages", messages);
        bindings.put("add_generation_prompt", true);
        bindings.put("bos_token", "");
        bindings.put("eos_token", "");
        Context context = new Context(JINJAVA.getGlobalContext(), bindings, VALIDATION.getDisabled());
        JinjavaInterpreter interpreter = VALIDATION.getInterpreterFactory().newInstance(JINJAVA, context, VALIDATION);
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            interpreter.render(root);
        } catch (RuntimeException e) {
            return List.of(); // a failure to render is the render's to report, not a syntax error
        } finally {
            JinjavaInterpreter.popCurrent();
            TemplateGlobals.RAISED.remove();
        }
        return interpreter.getErrorsCopy().stream()
                .filter(e -> e.getReason() == TemplateError.ErrorReason.SYNTAX_ERROR && !raised(e.getException()))
                .toList();
    }

    private static boolean raised(Throwable t) {
        for (int depth = 0; t != null && depth < 16; t = t.getCause(), depth++) {
            if (t instanceof TemplateGlobals.Raised) {
                return true;
            }
        }
        return false;
    }

    private static String capitalized(String s) {
        return s.isEmpty() ? s : Character.toUpperCase(s.charAt(0)) + s.substring(1);
    }

    private static String oneLine(String s) {
        return s == null ? "unknown error" : s.strip().replaceAll("\\s+", " ");
    }

    /** The message on one line, ending in a full stop unless it ends in one already (or in ! or ?). */
    private static String sentence(String s) {
        String line = oneLine(s);
        return line.endsWith(".") || line.endsWith("!") || line.endsWith("?") ? line : line + ".";
    }
}
