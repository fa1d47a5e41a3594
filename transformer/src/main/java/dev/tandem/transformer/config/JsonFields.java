package dev.tandem.transformer.config;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Utf8Text;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Typed, validated reads from one JSON object of a model file ({@code config.json},
 * {@code generation_config.json}), every failure a one-sentence {@link TandemException} naming the
 * file and the field ({@code prefix + key}, e.g. {@code rope_scaling.factor}).
 *
 * <p>"Absent" means the key is not in the object; an explicit JSON {@code null} is reported
 * separately ({@link #isNull}) because Hugging Face sometimes gives the two different meanings
 * (Mistral's {@code sliding_window}: absent means 4096, null means no window).
 */
final class JsonFields {
    /** Python's json writes NaN/Infinity for non-finite floats; accept them and let validation judge. */
    private static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    private final String file;
    private final String prefix;
    private final ObjectNode node;

    private JsonFields(String file, String prefix, ObjectNode node) {
        this.file = file;
        this.prefix = prefix;
        this.node = node;
    }

    /**
     * Reads {@code path} as a JSON object. A missing file is reported as "{@code <name> not found in
     * <dir>}", unless {@code optional}, when null is returned.
     */
    static JsonFields read(Path path, boolean optional) {
        String name = path.getFileName().toString();
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(path);
        } catch (NoSuchFileException e) {
            if (optional) {
                return null;
            }
            throw new TandemException(name + " not found in model directory " + path.getParent() + ".");
        } catch (IOException e) {
            if (optional && !Files.exists(path)) {
                return null;
            }
            throw new TandemException(name + " in " + path.getParent() + " could not be read (" + IoErrors.reason(e) + ").", e);
        }
        Utf8Text.requireValid(bytes, name);
        JsonNode root;
        try {
            root = MAPPER.readTree(bytes);
        } catch (JsonProcessingException e) {
            throw new TandemException(name + " is not valid JSON" + where(e) + ".", e);
        } catch (IOException e) {
            throw new TandemException(name + " is not valid JSON.", e);
        }
        if (root == null || !root.isObject()) {
            throw new TandemException(name + " is not a JSON object.");
        }
        return new JsonFields(name, "", (ObjectNode) root);
    }

    static String where(JsonProcessingException e) {
        JsonLocation loc = e.getLocation();
        if (loc == null || loc.getLineNr() < 0) {
            return "";
        }
        return " (line " + loc.getLineNr() + ", column " + loc.getColumnNr() + ")";
    }

    String file() {
        return file;
    }

    /** The field's full name in messages, e.g. {@code rope_scaling.factor}. */
    String name(String key) {
        return prefix + key;
    }

    boolean has(String key) {
        return node.has(key);
    }

    boolean isNull(String key) {
        JsonNode v = node.get(key);
        return v != null && v.isNull();
    }

    /** Present and not JSON null. */
    boolean hasValue(String key) {
        JsonNode v = node.get(key);
        return v != null && !v.isNull();
    }

    JsonNode raw(String key) {
        return node.get(key);
    }

    TandemException error(String key, String problem) {
        return new TandemException(file + ": " + name(key) + " " + problem + ".");
    }

    TandemException error(String sentenceAfterColon) {
        return new TandemException(file + ": " + sentenceAfterColon + ".");
    }

    static String show(JsonNode v) {
        String s = v.toString();
        return s.length() > 60 ? s.substring(0, 57) + "..." : s;
    }

    // ---- integers ----

    private int asInt(String key, JsonNode v) {
        if (!v.isIntegralNumber()) {
            throw error(key, "must be an integer, got " + show(v));
        }
        if (!v.canConvertToInt()) {
            throw error(key, "is out of range, got " + show(v));
        }
        return v.intValue();
    }

    /** The integer at {@code key}; absent or null → null. */
    Integer intOrNull(String key) {
        JsonNode v = node.get(key);
        return v == null || v.isNull() ? null : asInt(key, v);
    }

    /** The integer at {@code key}, {@code dflt} when absent; JSON null is an error. */
    int intOr(String key, int dflt) {
        JsonNode v = node.get(key);
        if (v == null) {
            return dflt;
        }
        if (v.isNull()) {
            throw error(key, "must be an integer, got null");
        }
        return asInt(key, v);
    }

    int positiveInt(String key, int dflt) {
        int x = intOr(key, dflt);
        if (x <= 0) {
            throw error(key, "must be positive, got " + x);
        }
        return x;
    }

    int requiredInt(String key, String context) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            throw error(key, "is missing" + context);
        }
        return asInt(key, v);
    }

    /** An int or a list of ints (e.g. {@code eos_token_id}); absent or null → {@code dflt}. */
    List<Integer> intList(String key, List<Integer> dflt) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            return dflt;
        }
        List<Integer> out = new ArrayList<>();
        if (v.isArray()) {
            for (JsonNode e : v) {
                if (!e.isIntegralNumber() || !e.canConvertToInt()) {
                    throw error(key, "must be an integer or a list of integers, got " + show(v));
                }
                out.add(e.intValue());
            }
        } else {
            out.add(asInt(key, v));
        }
        for (int id : out) {
            if (id < 0) {
                throw error(key, "must not be negative, got " + show(v));
            }
        }
        return List.copyOf(out);
    }

    // ---- floating point ----

    private double asDouble(String key, JsonNode v) {
        if (!v.isNumber()) {
            throw error(key, "must be a number, got " + show(v));
        }
        return v.doubleValue();
    }

    Double doubleOrNull(String key) {
        JsonNode v = node.get(key);
        return v == null || v.isNull() ? null : asDouble(key, v);
    }

    double doubleOr(String key, double dflt) {
        JsonNode v = node.get(key);
        if (v == null) {
            return dflt;
        }
        if (v.isNull()) {
            throw error(key, "must be a number, got null");
        }
        return asDouble(key, v);
    }

    double requiredDouble(String key, String context) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            throw error(key, "is missing" + context);
        }
        return asDouble(key, v);
    }

    static boolean positiveFinite(double x) {
        return x > 0 && Double.isFinite(x);
    }

    // ---- booleans and strings ----

    Boolean boolOrNull(String key) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isBoolean()) {
            throw error(key, "must be true or false, got " + show(v));
        }
        return v.booleanValue();
    }

    /** The boolean at {@code key}; absent or JSON null → {@code dflt} (Python treats None as false-like). */
    boolean boolOr(String key, boolean dflt) {
        Boolean b = boolOrNull(key);
        return b == null ? dflt : b;
    }

    String stringOrNull(String key) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isTextual()) {
            throw error(key, "must be a string, got " + show(v));
        }
        return v.textValue();
    }

    /** The object at {@code key} as fields named {@code key.x}; absent or null → null. */
    JsonFields objectOrNull(String key) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isObject()) {
            throw error(key, "must be a JSON object, got " + show(v));
        }
        return new JsonFields(file, prefix + key + ".", (ObjectNode) v);
    }

    boolean isEmpty() {
        return node.isEmpty();
    }

    Iterable<String> keys() {
        List<String> keys = new ArrayList<>();
        node.fieldNames().forEachRemaining(keys::add);
        return keys;
    }
}
