package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.runtime.TandemException;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * One {@code tokenizer.json}, read: its JSON tree, with the two big tables ({@code model.vocab} and
 * {@code model.merges}) read straight into compact form instead (a tree of their half a million nodes
 * would double the load time of a Llama 3 file); and field access that fails with one sentence naming
 * the file and the field's path in it (e.g. {@code pre_tokenizer.pretokenizers[0].pattern.Regex}).
 */
final class TokenizerJson {
    /**
     * Field names are neither interned nor canonicalized: the vocabulary's are 100k+ distinct strings
     * seen once, and Jackson's symbol table and {@link String#intern} for them took a third of the
     * time to read a Llama 3 file.
     */
    private static final ObjectMapper JSON = new ObjectMapper(JsonFactory.builder()
            .disable(JsonFactory.Feature.INTERN_FIELD_NAMES)
            .disable(JsonFactory.Feature.CANONICALIZE_FIELD_NAMES)
            .build());

    /** The file, as messages name it, e.g. {@code "tokenizer.json at /models/x/tokenizer.json"}. */
    final String where;
    /** The top-level object; its {@code model} lacks {@code vocab} and {@code merges} if they were read as tables. */
    final ObjectNode root = JsonNodeFactory.instance.objectNode();
    /** {@code model.vocab}, or null if it is missing or not an object. */
    Map<String, Integer> vocab;
    /** {@code model.merges} as (left, right) strings, flattened; null if missing or not an array. */
    List<String> merges;

    private TokenizerJson(String where) {
        this.where = where;
    }

    /**
     * A {@code tokenizer.json} made in memory (from GGUF metadata): {@code root} without the model's vocab and
     * merges, which come as tables.
     */
    static TokenizerJson of(String where, ObjectNode root, Map<String, Integer> vocab, List<String> merges) {
        TokenizerJson json = new TokenizerJson(where);
        json.root.setAll(root);
        json.vocab = vocab;
        json.merges = merges;
        return json;
    }

    /**
     * Reads a {@code tokenizer.json}.
     *
     * @throws TandemException if it is empty, not a JSON object, or its vocab or merges are malformed
     * @throws IOException if it cannot be read or is not JSON ({@link com.fasterxml.jackson.core.JacksonException})
     */
    static TokenizerJson read(InputStream in, String where) throws IOException {
        TokenizerJson json = new TokenizerJson(where);
        try (JsonParser p = JSON.createParser(in)) {
            JsonToken first = p.nextToken();
            if (first == null) {
                throw new TandemException(where + " is empty.");
            }
            if (first != JsonToken.START_OBJECT) {
                throw new TandemException(where + ": the top level is not a JSON object.");
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                if (p.nextToken() == JsonToken.START_OBJECT && name.equals("model")) {
                    json.root.set(name, json.readModel(p));
                } else {
                    json.root.set(name, JSON.readTree(p));
                }
            }
        }
        return json;
    }

    private ObjectNode readModel(JsonParser p) throws IOException {
        ObjectNode model = JsonNodeFactory.instance.objectNode();
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String name = p.currentName();
            JsonToken value = p.nextToken();
            if (name.equals("vocab") && value == JsonToken.START_OBJECT) {
                vocab = readVocab(p);
            } else if (name.equals("merges") && value == JsonToken.START_ARRAY) {
                merges = readMerges(p);
            } else {
                model.set(name, JSON.readTree(p));
            }
        }
        return model;
    }

    private Map<String, Integer> readVocab(JsonParser p) throws IOException {
        Map<String, Integer> tokens = new HashMap<>();
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String token = p.currentName();
            JsonToken id = p.nextToken();
            if (id != JsonToken.VALUE_NUMBER_INT || p.getNumberType() != JsonParser.NumberType.INT
                    || p.getIntValue() < 0) {
                throw fail("model.vocab entry \"" + token + "\" has id " + JSON.readTree(p)
                        + ", not a non-negative integer");
            }
            tokens.put(token, p.getIntValue());
        }
        return tokens;
    }

    private List<String> readMerges(JsonParser p) throws IOException {
        List<String> pairs = new ArrayList<>();
        for (int rank = 0; p.nextToken() != JsonToken.END_ARRAY; rank++) {
            // Older files write "a b"; newer ones ["a", "b"] so that tokens may contain spaces.
            if (p.currentToken() == JsonToken.VALUE_STRING) {
                String text = p.getText();
                int space = text.indexOf(' ');
                if (space < 0 || text.indexOf(' ', space + 1) >= 0) {
                    throw fail("model.merges[" + rank + "] \"" + text + "\" is not two tokens separated by one space");
                }
                pairs.add(text.substring(0, space));
                pairs.add(text.substring(space + 1));
            } else if (p.currentToken() == JsonToken.START_ARRAY && p.nextToken() == JsonToken.VALUE_STRING) {
                pairs.add(p.getText());
                if (p.nextToken() != JsonToken.VALUE_STRING) {
                    throw fail("model.merges[" + rank + "] is neither a \"a b\" string nor a two-string array");
                }
                pairs.add(p.getText());
                if (p.nextToken() != JsonToken.END_ARRAY) {
                    throw fail("model.merges[" + rank + "] is neither a \"a b\" string nor a two-string array");
                }
            } else {
                throw fail("model.merges[" + rank + "] is neither a \"a b\" string nor a two-string array");
            }
        }
        return pairs;
    }

    TandemException fail(String detail) {
        return new TandemException(where + ": " + detail + ".");
    }

    /** The path of {@code field} inside the object at {@code path} ("" for the top level). */
    private static String at(String path, String field) {
        return path.isEmpty() ? field : path + "." + field;
    }

    /** A JSON null or an absent field: the component is not used. */
    static boolean absent(JsonNode node) {
        return node == null || node.isMissingNode() || node.isNull();
    }

    /** The component's {@code "type"}, which must be one of {@code supported}. */
    String type(JsonNode node, String path, List<String> supported) {
        if (!node.isObject()) {
            throw fail(path + " is not an object");
        }
        String type = node.path("type").asText("");
        if (type.isEmpty()) {
            throw fail(path + ".type is missing");
        }
        if (!supported.contains(type)) {
            throw fail(path + ".type " + type + " is not supported (supported: " + String.join(", ", supported) + ")");
        }
        return type;
    }

    String text(JsonNode node, String field, String path) {
        JsonNode value = node.path(field);
        if (!value.isTextual()) {
            throw fail(at(path, field) + " is missing or not a string");
        }
        return value.textValue();
    }

    /** A field holding exactly one character (one code point, as Rust's {@code char}). */
    String character(JsonNode node, String field, String path) {
        String value = text(node, field, path);
        if (value.codePointCount(0, value.length()) != 1) {
            throw fail(at(path, field) + " \"" + value + "\" is not a single character");
        }
        return value;
    }

    boolean bool(JsonNode node, String field, boolean otherwise, String path) {
        JsonNode value = node.path(field);
        if (absent(value)) {
            return otherwise;
        }
        if (!value.isBoolean()) {
            throw fail(at(path, field) + " is not true or false");
        }
        return value.booleanValue();
    }

    int nonNegativeInt(JsonNode node, String field, int otherwise, String path) {
        JsonNode value = node.path(field);
        if (absent(value)) {
            return otherwise;
        }
        if (!value.isIntegralNumber() || !value.canConvertToInt() || value.intValue() < 0) {
            throw fail(at(path, field) + " is not a non-negative integer");
        }
        return value.intValue();
    }

    /** An array field; an absent one is empty. */
    JsonNode array(JsonNode node, String field, String path) {
        JsonNode value = node.path(field);
        if (absent(value)) {
            return JsonNodeFactory.instance.arrayNode();
        }
        if (!value.isArray()) {
            throw fail(at(path, field) + " is not an array");
        }
        return value;
    }

    /**
     * Metaspace's {@code prepend_scheme} ("always", "first" or "never"); files from before it have
     * {@code add_prefix_space}, where true means "always" and false "never".
     */
    String prependScheme(JsonNode node, String path) {
        String scheme = node.path("prepend_scheme").asText(bool(node, "add_prefix_space", true, path) ? "always" : "never");
        if (!List.of("always", "first", "never").contains(scheme)) {
            throw fail(path + ".prepend_scheme " + scheme + " is not one of always, first, never");
        }
        return scheme;
    }

    /** A {@code pattern} object: {@code {"String": literal}} or {@code {"Regex": oniguruma}}, compiled. */
    TextPattern pattern(JsonNode node, String path) {
        JsonNode pattern = node.path("pattern");
        String at = path + ".pattern";
        if (pattern.path("String").isTextual()) {
            String literal = pattern.path("String").textValue();
            if (literal.isEmpty()) {
                throw fail(at + ".String is empty");
            }
            return new TextPattern(Pattern.compile(Pattern.quote(literal)), literal, where + ": " + at + ".String");
        }
        if (pattern.path("Regex").isTextual()) {
            String regex = pattern.path("Regex").textValue();
            try {
                return new TextPattern(OnigurumaRegex.compile(regex), null, where + ": " + at + ".Regex \"" + regex + "\"");
            } catch (PatternSyntaxException e) {
                throw fail(at + ".Regex \"" + regex + "\" does not compile as a Java regex ("
                        + e.getDescription() + " near index " + e.getIndex() + ")");
            }
        }
        throw fail(at + " is neither {\"String\": ...} nor {\"Regex\": ...}");
    }
}
