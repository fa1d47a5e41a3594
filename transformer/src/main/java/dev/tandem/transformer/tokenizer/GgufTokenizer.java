package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.weights.GgufValue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Tokenizers in GGUF metadata ({@code tokenizer.ggml.*}), both ways, through the {@code tokenizer.json} pipeline:
 * {@link #fromMetadata} makes the {@code tokenizer.json} a Hugging Face checkpoint of the same tokenizer has, and
 * {@link #toMetadata} writes a {@code tokenizer.json}'s tokenizer as llama.cpp's converter does.
 * <ul>
 *   <li>{@code gpt2}: byte-level BPE; tokens, {@code "a b"} merges, and {@code tokenizer.ggml.pre} naming the
 *       pre-tokenizer: {@code default} / {@code gpt-2} (GPT-2's regex), {@code llama-bpe} / {@code llama3} /
 *       {@code llama-v3} (Llama 3's regex, merges ignored for whole words in the vocabulary) and {@code qwen2}
 *       (Qwen's regex after NFC).</li>
 *   <li>{@code llama}: SentencePiece-style BPE with byte fallback ({@code <0xNN>} tokens); tokens and scores, the
 *       merges derived from the scores as Hugging Face's {@code SentencePieceExtractor} does: every split of a token
 *       into two tokens, by the token's score, highest first (ties in token order), each token's splits ordered by
 *       the ids of their halves.</li>
 * </ul>
 * Token types: CONTROL and UNKNOWN tokens are special added tokens, USER_DEFINED ones added tokens that are not
 * special.
 */
public final class GgufTokenizer {

    /** llama.cpp's {@code llama_token_type}. */
    static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;

    static final String MODEL = "tokenizer.ggml.model";
    static final String PRE = "tokenizer.ggml.pre";
    static final String TOKENS = "tokenizer.ggml.tokens";
    static final String TYPES = "tokenizer.ggml.token_type";
    static final String SCORES = "tokenizer.ggml.scores";
    static final String MERGES = "tokenizer.ggml.merges";
    static final String BOS = "tokenizer.ggml.bos_token_id";
    static final String EOS = "tokenizer.ggml.eos_token_id";
    static final String UNK = "tokenizer.ggml.unknown_token_id";
    static final String ADD_BOS = "tokenizer.ggml.add_bos_token";
    static final String ADD_SPACE_PREFIX = "tokenizer.ggml.add_space_prefix";

    static final String LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static final String QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** The {@code tokenizer.ggml.pre} names this reads, and the one it writes for each pre-tokenizer. */
    static final List<String> GPT2_PRES = List.of("default", "gpt-2"), LLAMA3_PRES = List.of("llama-bpe", "llama3", "llama-v3"),
            QWEN2_PRES = List.of("qwen2");
    private static final String SPACE = "\u2581";
    private static final JsonNodeFactory JSON = JsonNodeFactory.instance;

    private GgufTokenizer() {
    }

    /**
     * The tokenizer of GGUF metadata.
     *
     * @param where the file, for messages
     * @throws TandemException when a field is missing or malformed, or the tokenizer model or pre-tokenizer is not one
     *                         Tandem knows
     */
    public static Tokenizer fromMetadata(Map<String, GgufValue> metadata, String where) {
        return Tokenizers.build(tokenizerJson(metadata, where));
    }

    static TokenizerJson tokenizerJson(Map<String, GgufValue> metadata, String where) {
        Fields f = new Fields(metadata, where);
        String model = f.string(MODEL);
        List<String> tokens = f.strings(TOKENS);
        int[] types = f.has(TYPES) ? f.ints(TYPES, tokens.size()) : null;
        Map<String, Integer> vocab = new HashMap<>();
        for (int i = 0; i < tokens.size(); i++) {
            vocab.putIfAbsent(tokens.get(i), i); // a token listed twice keeps its first id, as llama.cpp's lookup does
        }
        ObjectNode root = JSON.objectNode();
        ObjectNode bpe = JSON.objectNode().put("type", "BPE");
        List<String> merges;
        switch (model) {
            case "gpt2" -> {
                String pre = f.has(PRE) ? f.string(PRE) : "default";
                merges = splitMerges(f.strings(MERGES), f);
                ObjectNode byteLevel = byteLevel(false, true, false);
                if (GPT2_PRES.contains(pre)) {
                    root.set("pre_tokenizer", byteLevel(false, true, true));
                } else if (LLAMA3_PRES.contains(pre)) {
                    root.set("pre_tokenizer", sequence(split(LLAMA3_REGEX), byteLevel));
                    bpe.put("ignore_merges", true);
                } else if (QWEN2_PRES.contains(pre)) {
                    root.set("normalizer", JSON.objectNode().put("type", "NFC"));
                    root.set("pre_tokenizer", sequence(split(QWEN2_REGEX), byteLevel(false, false, false)));
                } else {
                    throw f.error(PRE, "is \"" + pre + "\", a pre-tokenizer Tandem does not know (it knows "
                            + String.join(", ", concat(GPT2_PRES, LLAMA3_PRES, QWEN2_PRES)) + ")");
                }
                root.set("decoder", byteLevel(true, true, true));
                bpe.put("byte_fallback", false);
            }
            case "llama" -> {
                float[] scores = f.floats(SCORES, tokens.size());
                merges = mergesFromScores(tokens, scores, vocab);
                boolean prefix = !f.has(ADD_SPACE_PREFIX) || f.bool(ADD_SPACE_PREFIX);
                ObjectNode replace = JSON.objectNode().put("type", "Replace");
                replace.set("pattern", JSON.objectNode().put("String", " "));
                replace.put("content", SPACE);
                root.set("normalizer", prefix ? sequenceOf("normalizers",
                        JSON.objectNode().put("type", "Prepend").put("prepend", SPACE), replace) : replace);
                ObjectNode unspace = JSON.objectNode().put("type", "Replace");
                unspace.set("pattern", JSON.objectNode().put("String", SPACE));
                unspace.put("content", " ");
                List<ObjectNode> decoders = new ArrayList<>(List.of(unspace, JSON.objectNode().put("type", "ByteFallback"),
                        JSON.objectNode().put("type", "Fuse")));
                if (prefix) {
                    decoders.add(JSON.objectNode().put("type", "Strip").put("content", " ").put("start", 1).put("stop", 0));
                }
                root.set("decoder", sequenceOf("decoders", decoders.toArray(ObjectNode[]::new)));
                bpe.put("byte_fallback", true).put("fuse_unk", true);
                Integer unk = f.has(UNK) ? f.tokenId(UNK, tokens.size()) : null;
                for (int i = 0; unk == null && types != null && i < types.length; i++) {
                    unk = types[i] == UNKNOWN ? i : null;
                }
                if (unk != null) {
                    bpe.put("unk_token", tokens.get(unk));
                }
            }
            default -> throw f.error(MODEL, "is \"" + model + "\", a tokenizer model Tandem does not read from GGUF"
                    + " (it reads gpt2 and llama)");
        }
        root.set("model", bpe);
        ArrayNode added = root.putArray("added_tokens");
        for (int i = 0; types != null && i < types.length; i++) {
            if (types[i] == CONTROL || types[i] == UNKNOWN || types[i] == USER_DEFINED) {
                added.addObject().put("id", i).put("content", tokens.get(i)).put("single_word", false)
                        .put("lstrip", false).put("rstrip", false).put("normalized", false)
                        .put("special", types[i] != USER_DEFINED);
            }
        }
        boolean addBos = f.has(ADD_BOS) ? f.bool(ADD_BOS) : model.equals("llama");
        if (addBos && f.has(BOS)) {
            String bos = tokens.get(f.tokenId(BOS, tokens.size()));
            ObjectNode post = JSON.objectNode().put("type", "TemplateProcessing");
            ArrayNode single = post.putArray("single");
            single.addObject().putObject("SpecialToken").put("id", bos).put("type_id", 0);
            single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
            ArrayNode pair = post.putArray("pair");
            pair.addAll(single.deepCopy());
            pair.addObject().putObject("SpecialToken").put("id", bos).put("type_id", 1);
            pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
            ObjectNode special = post.putObject("special_tokens").putObject(bos);
            special.put("id", bos);
            special.putArray("ids").add(f.tokenId(BOS, tokens.size()));
            special.putArray("tokens").add(bos);
            root.set("post_processor", post);
        }
        return TokenizerJson.of("the tokenizer of " + where, root, vocab, merges);
    }

    @SafeVarargs
    private static List<String> concat(List<String>... lists) {
        List<String> all = new ArrayList<>();
        for (List<String> l : lists) {
            all.addAll(l);
        }
        return all;
    }

    private static ObjectNode byteLevel(boolean addPrefixSpace, boolean trimOffsets, boolean useRegex) {
        return JSON.objectNode().put("type", "ByteLevel").put("add_prefix_space", addPrefixSpace)
                .put("trim_offsets", trimOffsets).put("use_regex", useRegex);
    }

    private static ObjectNode split(String regex) {
        ObjectNode s = JSON.objectNode().put("type", "Split");
        s.putObject("pattern").put("Regex", regex);
        return s.put("behavior", "Isolated").put("invert", false);
    }

    private static ObjectNode sequence(ObjectNode... steps) {
        return sequenceOf("pretokenizers", steps);
    }

    private static ObjectNode sequenceOf(String field, ObjectNode... steps) {
        ObjectNode s = JSON.objectNode().put("type", "Sequence");
        ArrayNode a = s.putArray(field);
        for (ObjectNode step : steps) {
            a.add(step);
        }
        return s;
    }

    /** {@code "a b"} merges as the flattened (left, right) list {@link TokenizerJson#merges} holds. */
    private static List<String> splitMerges(List<String> merges, Fields f) {
        List<String> pairs = new ArrayList<>(merges.size() * 2);
        for (int i = 0; i < merges.size(); i++) {
            String m = merges.get(i);
            int space = m.indexOf(' ');
            if (space <= 0 || space == m.length() - 1 || m.indexOf(' ', space + 1) >= 0) {
                throw f.error(MERGES, "entry " + i + " \"" + m + "\" is not two tokens separated by one space");
            }
            pairs.add(m.substring(0, space));
            pairs.add(m.substring(space + 1));
        }
        return pairs;
    }

    /** Hugging Face's {@code SentencePieceExtractor.extract} with scores (see the class comment). */
    static List<String> mergesFromScores(List<String> tokens, float[] scores, Map<String, Integer> vocab) {
        record Merge(String left, String right, float score, int order) {
        }
        List<Merge> merges = new ArrayList<>();
        for (int id = 0; id < tokens.size(); id++) {
            String piece = tokens.get(id);
            if (vocab.get(piece) != id) {
                continue; // a duplicate: the vocabulary has one entry per piece
            }
            List<Merge> local = new ArrayList<>();
            for (int at = piece.offsetByCodePoints(0, 1); at < piece.length(); at = piece.offsetByCodePoints(at, 1)) {
                String left = piece.substring(0, at);
                String right = piece.substring(at);
                if (vocab.containsKey(left) && vocab.containsKey(right)) {
                    local.add(new Merge(left, right, scores[id], 0));
                }
            }
            local.sort(Comparator.comparingInt((Merge m) -> vocab.get(m.left)).thenComparingInt(m -> vocab.get(m.right)));
            for (Merge m : local) {
                merges.add(new Merge(m.left, m.right, m.score, merges.size()));
            }
        }
        merges.sort(Comparator.comparingDouble((Merge m) -> -m.score).thenComparingInt(Merge::order));
        List<String> pairs = new ArrayList<>(merges.size() * 2);
        for (Merge m : merges) {
            pairs.add(m.left);
            pairs.add(m.right);
        }
        return pairs;
    }

    // ---- tokenizer.json → GGUF metadata ----

    /**
     * The {@code tokenizer.ggml.*} metadata of the tokenizer in {@code tokenizerJson}, as llama.cpp's converter writes
     * it: byte-level BPE as {@code gpt2} (with the {@code pre} of its regex), SentencePiece-style BPE as {@code llama}
     * (scores made from the merge ranks: a token scores minus the rank of the first merge that makes it, so that the
     * merges {@link #fromMetadata} derives are the file's, and llama.cpp, which merges by score, merges in rank order).
     * The token list is padded to {@code vocabSize} with {@code [PADn]} tokens of type UNUSED, as llama.cpp pads it.
     *
     * @throws TandemException when the tokenizer is not BPE, its pre-tokenizer or normalizer is not one GGUF can name,
     *                         or it does not read back the same
     */
    public static Map<String, GgufValue> toMetadata(Path tokenizerJson, int vocabSize, Integer bosId, List<Integer> eosIds) {
        TokenizerJson json = Tokenizers.read(tokenizerJson);
        String where = json.where;
        JsonNode model = json.root.path("model");
        if (!"BPE".equals(model.path("type").asText("BPE")) || json.vocab == null || json.merges == null) {
            throw new TandemException(where + ": only BPE tokenizers can be written to GGUF (this one's model is "
                    + model.path("type").asText("missing") + ").");
        }
        boolean sentencePiece = model.path("byte_fallback").asBoolean(false);
        Map<Integer, JsonNode> addedById = new HashMap<>();
        for (JsonNode a : json.root.path("added_tokens")) {
            addedById.put(a.path("id").asInt(), a);
        }
        int count = vocabSize;
        for (int id : json.vocab.values()) {
            count = Math.max(count, id + 1);
        }
        for (int id : addedById.keySet()) {
            count = Math.max(count, id + 1);
        }
        String[] tokens = new String[count];
        json.vocab.forEach((t, id) -> tokens[id] = t);
        addedById.forEach((id, a) -> tokens[id] = a.path("content").asText());
        int[] types = new int[count];
        String unk = model.path("unk_token").asText(null);
        for (int i = 0; i < count; i++) {
            JsonNode a = addedById.get(i);
            if (tokens[i] == null) {
                tokens[i] = "[PAD" + i + "]";
                types[i] = UNUSED;
            } else if (a != null) {
                types[i] = tokens[i].equals(unk) ? UNKNOWN : a.path("special").asBoolean(false) ? CONTROL : USER_DEFINED;
            } else if (sentencePiece && tokens[i].matches("<0x[0-9A-F]{2}>")) {
                types[i] = BYTE;
            } else {
                types[i] = tokens[i].equals(unk) ? UNKNOWN : NORMAL;
            }
        }
        Map<String, GgufValue> m = new LinkedHashMap<>();
        if (sentencePiece) {
            m.put(MODEL, GgufValue.string("llama"));
            m.put(PRE, GgufValue.string("default"));
        } else {
            m.put(MODEL, GgufValue.string("gpt2"));
            m.put(PRE, GgufValue.string(preName(json)));
        }
        m.put(TOKENS, GgufValue.strings(List.of(tokens)));
        if (sentencePiece) {
            m.put(SCORES, GgufValue.f32s(scoresFromMerges(tokens, json.merges, json.vocab)));
        }
        m.put(TYPES, GgufValue.i32s(types));
        if (!sentencePiece) {
            List<String> merges = new ArrayList<>(json.merges.size() / 2);
            for (int i = 0; i < json.merges.size(); i += 2) {
                merges.add(json.merges.get(i) + " " + json.merges.get(i + 1));
            }
            m.put(MERGES, GgufValue.strings(merges));
        }
        if (bosId != null) {
            m.put(BOS, GgufValue.u32(bosId));
        }
        if (!eosIds.isEmpty()) {
            m.put(EOS, GgufValue.u32(eosIds.getFirst()));
        }
        if (unk != null && json.vocab.containsKey(unk)) {
            m.put(UNK, GgufValue.u32(json.vocab.get(unk)));
        }
        m.put(ADD_BOS, GgufValue.bool(addsBos(json.root.path("post_processor"))));
        if (sentencePiece) {
            m.put(ADD_SPACE_PREFIX, GgufValue.bool(json.root.path("normalizer").toString().contains("\"Prepend\"")));
        }
        requireSamePipeline(json, tokenizerJson(m, where));
        return m;
    }

    /** Whether a post-processor puts a token before the text (BOS): a TemplateProcessing that begins with one. */
    private static boolean addsBos(JsonNode post) {
        JsonNode single = post.path("single");
        return "TemplateProcessing".equals(post.path("type").asText()) && single.isArray() && !single.isEmpty()
                && single.get(0).has("SpecialToken");
    }

    private static String preName(TokenizerJson json) {
        String pre = json.root.path("pre_tokenizer").toString();
        if (pre.contains(jsonString(LLAMA3_REGEX))) {
            return LLAMA3_PRES.getFirst();
        }
        if (pre.contains(jsonString(QWEN2_REGEX))) {
            return QWEN2_PRES.getFirst();
        }
        return "gpt-2";
    }

    private static String jsonString(String s) {
        return JSON.textNode(s).toString();
    }

    /** Scores whose {@link #mergesFromScores} order is the merges' rank order (see {@link #toMetadata}). */
    private static float[] scoresFromMerges(String[] tokens, List<String> merges, Map<String, Integer> vocab) {
        float[] scores = new float[tokens.length];
        boolean[] made = new boolean[tokens.length];
        for (int rank = 0; rank < merges.size() / 2; rank++) {
            Integer id = vocab.get(merges.get(2 * rank) + merges.get(2 * rank + 1));
            if (id != null && !made[id]) {
                made[id] = true;
                scores[id] = -rank;
            }
        }
        float floor = -(merges.size() / 2f) - 1;
        for (int i = 0; i < tokens.length; i++) {
            if (!made[i]) {
                scores[i] = floor; // made by no merge: characters, bytes, control tokens
            }
        }
        return scores;
    }

    /**
     * Refuses a tokenizer that GGUF's fields cannot carry: the tokenizer made back from the metadata must have the
     * source's normalizer, pre-tokenizer and merges (offsets settings aside, which change no id).
     */
    private static void requireSamePipeline(TokenizerJson source, TokenizerJson back) {
        for (String part : List.of("normalizer", "pre_tokenizer")) {
            JsonNode a = withoutOffsets(source.root.path(part));
            JsonNode b = withoutOffsets(back.root.path(part));
            if (!a.equals(b)) {
                throw new TandemException(source.where + ": its " + part + " " + (TokenizerJson.absent(a) ? "(none)" : a)
                        + " is not one GGUF's tokenizer fields can name, so llama.cpp would tokenize differently.");
            }
        }
        if (!Objects.equals(source.merges, back.merges)) {
            throw new TandemException(source.where + ": its merges cannot be expressed as GGUF token scores in the same"
                    + " order.");
        }
    }

    private static JsonNode withoutOffsets(JsonNode node) {
        if (node == null || node.isMissingNode() || node.isNull()) {
            return JSON.nullNode();
        }
        JsonNode copy = node.deepCopy();
        strip(copy);
        return copy;
    }

    private static void strip(JsonNode node) {
        if (node instanceof ObjectNode o) {
            o.remove("trim_offsets");
            o.properties().forEach(e -> strip(e.getValue()));
        } else if (node instanceof ArrayNode a) {
            a.forEach(GgufTokenizer::strip);
        }
    }

    /** Metadata reads that fail with a sentence naming the file and the key. */
    private record Fields(Map<String, GgufValue> values, String where) {
        TandemException error(String key, String detail) {
            return new TandemException(where + ": metadata " + key + " " + detail + ".");
        }

        boolean has(String key) {
            return values.containsKey(key);
        }

        GgufValue get(String key) {
            GgufValue v = values.get(key);
            if (v == null) {
                throw error(key, "is missing, so the file has no tokenizer Tandem can read");
            }
            return v;
        }

        String string(String key) {
            GgufValue v = get(key);
            if (v.type() != GgufValue.Type.STRING) {
                throw error(key, "is " + v.describe() + ", not a string");
            }
            return (String) v.value();
        }

        boolean bool(String key) {
            GgufValue v = get(key);
            if (v.type() != GgufValue.Type.BOOL) {
                throw error(key, "is " + v.describe() + ", not a bool");
            }
            return (Boolean) v.value();
        }

        int tokenId(String key, int tokens) {
            GgufValue v = get(key);
            Long id = v.integerOrNull();
            if (id == null || id < 0 || id >= tokens) {
                throw error(key, "is " + v.describe() + ", not a token id below " + tokens);
            }
            return id.intValue();
        }

        private List<GgufValue> array(String key, GgufValue.Type element, String what) {
            GgufValue v = get(key);
            if (v.type() != GgufValue.Type.ARRAY || v.elementType() != element) {
                throw error(key, "is " + v.describe() + ", not an array of " + what);
            }
            return v.elements();
        }

        List<String> strings(String key) {
            List<GgufValue> a = array(key, GgufValue.Type.STRING, "strings");
            if (a.isEmpty()) {
                throw error(key, "is empty");
            }
            return a.stream().map(e -> (String) e.value()).toList();
        }

        int[] ints(String key, int length) {
            GgufValue v = get(key);
            List<GgufValue> a = v.elements();
            if (v.type() != GgufValue.Type.ARRAY || a.size() != length || (!a.isEmpty() && a.getFirst().integerOrNull() == null)) {
                throw error(key, "is " + v.describe() + ", not " + length + " integers (one per token)");
            }
            int[] out = new int[length];
            for (int i = 0; i < length; i++) {
                out[i] = (int) (long) a.get(i).integerOrNull();
            }
            return out;
        }

        float[] floats(String key, int length) {
            List<GgufValue> a = array(key, GgufValue.Type.FLOAT32, "f32");
            if (a.size() != length) {
                throw error(key, "has " + a.size() + " scores for " + length + " tokens");
            }
            float[] out = new float[length];
            for (int i = 0; i < length; i++) {
                out[i] = (Float) a.get(i).value();
            }
            return out;
        }
    }
}
