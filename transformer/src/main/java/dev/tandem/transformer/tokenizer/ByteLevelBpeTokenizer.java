package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import dev.tandem.runtime.TandemException;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Byte-level BPE in the GPT-2 convention, as Hugging Face {@code tokenizers} runs it from a
 * {@code tokenizer.json}: text is split around added tokens, pre-tokenized with the GPT-2 pattern, each
 * piece's UTF-8 bytes are spelled with the GPT-2 byte-to-unicode alphabet, and merges are applied by
 * rank. Immutable after construction and safe for concurrent use; the per-word cache is concurrent.
 *
 * <p>Instances come from {@link Tokenizers#load}.
 */
public final class ByteLevelBpeTokenizer implements Tokenizer {

    /** The GPT-2 pre-tokenizer pattern, exactly as the Hugging Face ByteLevel pre-tokenizer writes it. */
    static final String GPT2_PATTERN =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    // UNICODE_CHARACTER_CLASS makes \s the Unicode White_Space set (NBSP, U+3000, ...), as Oniguruma's \s
    // is in the Rust crate; Java's default \s is ASCII only and would split such text differently.
    private static final Pattern GPT2_SPLIT = Pattern.compile(GPT2_PATTERN, Pattern.UNICODE_CHARACTER_CLASS);

    /** Same bounds as the Rust crate: decode loops re-encode the same words, but memory must stay bounded. */
    private static final int CACHE_CAPACITY = 10_000;
    private static final int MAX_CACHED_WORD_BYTES = 256;

    /** Byte value to the printable character GPT-2 spells it with. */
    private static final char[] BYTE_TO_CHAR = new char[256];
    /** The inverse, indexed by character; -1 for characters outside the byte-level alphabet. */
    private static final int[] CHAR_TO_BYTE = new int[0x144];

    static {
        // Printable Latin-1 bytes stand for themselves; the rest (controls, space, 0x7F-0xA0, 0xAD) are
        // moved to U+0100 upwards in byte order, so every token is a printable, whitespace-free string.
        Arrays.fill(CHAR_TO_BYTE, -1);
        int shifted = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + shifted++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private final Map<String, Integer> vocab;
    private final Map<String, Integer> addedIds;
    private final int vocabSize;
    /** By id: the vocabulary string (or added-token content); null where no token has that id. */
    private final String[] contents;
    /** By id: the bytes the token decodes to. */
    private final byte[][] bytes;
    /** Byte value to the id of its single-byte token, -1 if the vocabulary lacks it. */
    private final int[] byteToId = new int[256];
    /** (left id, right id) packed in a long to (rank, merged id) packed in a long. */
    private final Map<Long, Long> merges;
    private final AddedTokenMatcher addedTokens;
    private final int unkId;
    private final boolean fuseUnk;
    private final boolean ignoreMerges;
    private final boolean nfc;
    private final boolean addPrefixSpace;
    private final boolean useRegex;
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    private ByteLevelBpeTokenizer(Config config) {
        this.vocab = config.vocab;
        this.addedIds = config.addedIds;
        this.merges = config.merges;
        this.addedTokens = config.addedTokens;
        this.unkId = config.unkId;
        this.fuseUnk = config.fuseUnk;
        this.ignoreMerges = config.ignoreMerges;
        this.nfc = config.nfc;
        this.addPrefixSpace = config.addPrefixSpace;
        this.useRegex = config.useRegex;

        int maxId = -1;
        for (int id : vocab.values()) {
            maxId = Math.max(maxId, id);
        }
        for (int id : addedIds.values()) {
            maxId = Math.max(maxId, id);
        }
        this.vocabSize = maxId + 1;
        this.contents = new String[vocabSize];
        this.bytes = new byte[vocabSize][];
        vocab.forEach((token, id) -> {
            contents[id] = token;
            bytes[id] = byteLevelToBytes(token);
        });
        // Added tokens win over a vocabulary entry with the same id, and render as their content.
        addedIds.forEach((content, id) -> {
            contents[id] = content;
            bytes[id] = content.getBytes(StandardCharsets.UTF_8);
        });
        for (int b = 0; b < 256; b++) {
            byteToId[b] = vocab.getOrDefault(String.valueOf(BYTE_TO_CHAR[b]), -1);
        }
    }

    /**
     * Builds the tokenizer from a parsed {@code tokenizer.json}; {@code where} names the file in error
     * messages (e.g. {@code "tokenizer.json at /models/x/tokenizer.json"}).
     *
     * @throws TandemException if the file describes something other than GPT-2-style byte-level BPE
     */
    static ByteLevelBpeTokenizer fromJson(JsonNode root, String where) {
        return new ByteLevelBpeTokenizer(Config.parse(root, where));
    }

    // ---------------------------------------------------------------- encoding

    @Override
    public int[] encode(String text, boolean parseSpecialTokens) {
        Objects.requireNonNull(text, "text");
        IntList out = new IntList(Math.max(16, text.length() / 3));
        int textStart = 0;
        for (AddedTokenMatcher.Match m : addedTokens.split(text, parseSpecialTokens)) {
            encodeSegment(text.substring(textStart, m.start()), out);
            out.add(m.id());
            textStart = m.end();
        }
        encodeSegment(text.substring(textStart), out);
        return out.toArray();
    }

    private void encodeSegment(String segment, IntList out) {
        for (String piece : preTokenizePieces(segment)) {
            out.addAll(encodeWord(piece));
        }
    }

    /**
     * The normalized pre-tokens of one stretch of text free of added tokens, still as Java text. The
     * prefix space is added per stretch, as the Rust crate's ByteLevel pre-tokenizer does.
     */
    private List<String> preTokenizePieces(String segment) {
        if (segment.isEmpty()) {
            return List.of();
        }
        String s = nfc ? Normalizer.normalize(segment, Normalizer.Form.NFC) : segment;
        if (addPrefixSpace && !s.startsWith(" ")) {
            s = " " + s;
        }
        if (!useRegex) {
            return List.of(s);
        }
        // Every character matches one of the alternatives, so the matches tile the text with no gaps.
        List<String> pieces = new ArrayList<>();
        Matcher m = GPT2_SPLIT.matcher(s);
        while (m.find()) {
            pieces.add(m.group());
        }
        return pieces;
    }

    /** The pre-tokens of {@code text} spelled in the byte-level alphabet (e.g. "Ġworld"); for tests. */
    List<String> preTokenize(String text) {
        List<String> pieces = new ArrayList<>();
        for (String piece : preTokenizePieces(text)) {
            pieces.add(bytesToByteLevel(piece.getBytes(StandardCharsets.UTF_8)));
        }
        return pieces;
    }

    /** BPE of one pre-token, cached; the returned array is shared and must not be modified. */
    private int[] encodeWord(String piece) {
        int[] cached = cache.get(piece);
        if (cached != null) {
            return cached;
        }
        byte[] utf8 = piece.getBytes(StandardCharsets.UTF_8);
        int[] ids = bpe(utf8);
        // Stop filling once full rather than evict: simple, lock-free, and what the Rust crate does.
        if (utf8.length < MAX_CACHED_WORD_BYTES && cache.size() < CACHE_CAPACITY) {
            cache.putIfAbsent(piece, ids);
        }
        return ids;
    }

    private int[] bpe(byte[] utf8) {
        if (ignoreMerges) {
            Integer whole = vocab.get(bytesToByteLevel(utf8));
            if (whole != null) {
                return new int[] {whole};
            }
        }
        int[] symbols = new int[utf8.length];
        int n = 0;
        boolean previousUnknown = false;
        for (byte b : utf8) {
            int id = byteToId[b & 0xFF];
            if (id >= 0) {
                symbols[n++] = id;
                previousUnknown = false;
            } else if (unkId >= 0) {
                if (!(fuseUnk && previousUnknown)) {
                    symbols[n++] = unkId;
                }
                previousUnknown = true;
            }
            // A byte the vocabulary lacks, with no unk token, is dropped, as the Rust crate does.
        }
        return n < 2 ? Arrays.copyOf(symbols, n) : mergeByRank(symbols, n);
    }

    /**
     * Applies merges lowest rank first, leftmost first among equal ranks, until none applies: the same
     * order as the Rust crate's priority queue, so ties and overlaps ("aaa") resolve identically.
     * Symbols form a linked list; queue entries pack (rank, position) so the natural order is right, and
     * an entry is stale when its left symbol was absorbed or the pair at its position changed.
     */
    private int[] mergeByRank(int[] symbols, int n) {
        int[] next = new int[n];
        int[] prev = new int[n];
        boolean[] absorbed = new boolean[n];
        for (int i = 0; i < n; i++) {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        PriorityQueue<Long> queue = new PriorityQueue<>();
        for (int i = 0; i + 1 < n; i++) {
            offerPair(queue, symbols, i, i + 1);
        }
        while (!queue.isEmpty()) {
            long top = queue.poll();
            int rank = (int) (top >>> 32);
            int pos = (int) top;
            int right = next[pos];
            if (absorbed[pos] || right < 0) {
                continue;
            }
            Long merge = merges.get(pairKey(symbols[pos], symbols[right]));
            if (merge == null || (int) (merge >>> 32) != rank) {
                continue; // stale: ranks are unique per pair, so a different rank means a different pair
            }
            symbols[pos] = (int) (long) merge;
            absorbed[right] = true;
            next[pos] = next[right];
            if (next[pos] >= 0) {
                prev[next[pos]] = pos;
                offerPair(queue, symbols, pos, next[pos]);
            }
            if (prev[pos] >= 0) {
                offerPair(queue, symbols, prev[pos], pos);
            }
        }
        IntList out = new IntList(n);
        for (int i = 0; i >= 0; i = next[i]) {
            out.add(symbols[i]);
        }
        return out.toArray();
    }

    private void offerPair(PriorityQueue<Long> queue, int[] symbols, int left, int right) {
        Long merge = merges.get(pairKey(symbols[left], symbols[right]));
        if (merge != null) {
            queue.add((merge & 0xFFFF_FFFF_0000_0000L) | left);
        }
    }

    private static long pairKey(int left, int right) {
        return ((long) left << 32) | (right & 0xFFFF_FFFFL);
    }

    // ---------------------------------------------------------------- decoding and lookups

    @Override
    public String decode(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(ids.length * 4);
        for (int id : ids) {
            out.writeBytes(bytesOf(id));
        }
        // String decoding replaces malformed input with U+FFFD rather than throwing.
        return out.toString(StandardCharsets.UTF_8);
    }

    @Override
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public OptionalInt tokenId(String tokenContent) {
        Integer id = addedIds.get(tokenContent);
        if (id == null) {
            id = vocab.get(tokenContent);
        }
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    @Override
    public String tokenContent(int id) {
        checkId(id);
        return contents[id];
    }

    @Override
    public byte[] tokenBytes(int id) {
        return bytesOf(id).clone();
    }

    private byte[] bytesOf(int id) {
        checkId(id);
        return bytes[id];
    }

    private void checkId(int id) {
        if (id < 0 || id >= vocabSize) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + vocabSize + ")");
        }
        if (contents[id] == null) {
            throw new IllegalArgumentException("token id " + id + " is not assigned to any token");
        }
    }

    /** Number of words in the encode cache (bounded by {@value #CACHE_CAPACITY}); for tests. */
    int cachedWords() {
        return cache.size();
    }

    static String bytesToByteLevel(byte[] utf8) {
        char[] chars = new char[utf8.length];
        for (int i = 0; i < utf8.length; i++) {
            chars[i] = BYTE_TO_CHAR[utf8[i] & 0xFF];
        }
        return new String(chars);
    }

    /**
     * The bytes a vocabulary string stands for. A character outside the alphabet (only in special
     * tokens listed in the vocabulary) stands for its own UTF-8, as the Rust ByteLevel decoder does.
     */
    private static byte[] byteLevelToBytes(String token) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(token.length());
        token.codePoints().forEach(cp -> {
            int b = cp < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[cp] : -1;
            if (b >= 0) {
                out.write(b);
            } else {
                out.writeBytes(Character.toString(cp).getBytes(StandardCharsets.UTF_8));
            }
        });
        return out.toByteArray();
    }

    private static boolean inByteLevelAlphabet(int cp) {
        return cp < CHAR_TO_BYTE.length && CHAR_TO_BYTE[cp] >= 0;
    }

    // ---------------------------------------------------------------- tokenizer.json

    /** Everything read from tokenizer.json, validated. */
    private static final class Config {
        final String where;
        Map<String, Integer> vocab;
        Map<String, Integer> addedIds = new HashMap<>();
        Map<Long, Long> merges;
        AddedTokenMatcher addedTokens;
        int unkId = -1;
        boolean fuseUnk;
        boolean ignoreMerges;
        boolean nfc;
        boolean addPrefixSpace;
        boolean useRegex;

        private Config(String where) {
            this.where = where;
        }

        static Config parse(JsonNode root, String where) {
            Config c = new Config(where);
            JsonNode model = root.path("model");
            if (!model.isObject()) {
                throw c.fail("the \"model\" object is missing");
            }
            String type = model.path("type").asText("BPE");
            if (!type.equals("BPE")) {
                throw c.fail("model.type \"" + type + "\" is not supported (byte-level BPE only)");
            }
            if (model.path("byte_fallback").asBoolean(false)) {
                throw c.fail("model.byte_fallback is true, which marks SentencePiece-style BPE rather than"
                        + " byte-level BPE (byte-level BPE only)");
            }
            for (String field : List.of("continuing_subword_prefix", "end_of_word_suffix")) {
                String value = model.path(field).asText("");
                if (!value.isEmpty()) {
                    throw c.fail("model." + field + " \"" + value
                            + "\" is not supported (GPT-2 byte-level BPE has none)");
                }
            }
            // model.dropout is ignored: inference wants the deterministic segmentation.
            c.fuseUnk = model.path("fuse_unk").asBoolean(false);
            c.ignoreMerges = model.path("ignore_merges").asBoolean(false);
            c.vocab = c.parseVocab(model.path("vocab"));
            List<AddedTokenMatcher.AddedToken> added = c.parseAddedTokens(root.path("added_tokens"));
            c.addedTokens = new AddedTokenMatcher(added);
            c.checkByteLevelAlphabet();
            String unk = model.path("unk_token").asText("");
            if (!unk.isEmpty()) {
                Integer id = c.vocab.get(unk);
                if (id == null) {
                    throw c.fail("model.unk_token \"" + unk + "\" is not in model.vocab");
                }
                c.unkId = id;
            }
            c.merges = c.parseMerges(model.path("merges"));
            c.parseNormalizer(root.path("normalizer"));
            c.parsePreTokenizer(root.path("pre_tokenizer"));
            return c;
        }

        private Map<String, Integer> parseVocab(JsonNode node) {
            if (!node.isObject()) {
                throw fail("model.vocab is missing or not an object");
            }
            Map<String, Integer> vocab = new HashMap<>(node.size() * 2);
            for (Map.Entry<String, JsonNode> e : node.properties()) {
                JsonNode id = e.getValue();
                if (!id.canConvertToInt() || !id.isIntegralNumber() || id.intValue() < 0) {
                    throw fail("model.vocab entry \"" + e.getKey() + "\" has id " + id
                            + ", not a non-negative integer");
                }
                vocab.put(e.getKey(), id.intValue());
            }
            return vocab;
        }

        private List<AddedTokenMatcher.AddedToken> parseAddedTokens(JsonNode node) {
            List<AddedTokenMatcher.AddedToken> tokens = new ArrayList<>();
            if (node.isMissingNode() || node.isNull()) {
                return tokens;
            }
            if (!node.isArray()) {
                throw fail("added_tokens is not an array");
            }
            for (int i = 0; i < node.size(); i++) {
                JsonNode t = node.get(i);
                JsonNode id = t.path("id");
                String content = t.path("content").asText("");
                if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0 || content.isEmpty()) {
                    throw fail("added_tokens[" + i
                            + "] needs a non-negative integer \"id\" and a non-empty \"content\"");
                }
                tokens.add(new AddedTokenMatcher.AddedToken(id.intValue(), content,
                        t.path("special").asBoolean(false), t.path("lstrip").asBoolean(false),
                        t.path("rstrip").asBoolean(false), t.path("single_word").asBoolean(false)));
                addedIds.put(content, id.intValue());
            }
            return tokens;
        }

        /** Rejects SentencePiece-style vocabularies ("▁the"), whose strings are not byte-level spellings. */
        private void checkByteLevelAlphabet() {
            for (String token : vocab.keySet()) {
                if (addedIds.containsKey(token)) {
                    continue; // special tokens such as <|endoftext|> may use any characters
                }
                int bad = token.codePoints().filter(cp -> !inByteLevelAlphabet(cp)).findFirst().orElse(-1);
                if (bad >= 0) {
                    throw fail(String.format("model.vocab entry \"%s\" contains U+%04X, outside the GPT-2 byte-level"
                            + " alphabet, so this BPE is not byte-level (byte-level BPE only)", token, bad));
                }
            }
        }

        private Map<Long, Long> parseMerges(JsonNode node) {
            if (!node.isArray()) {
                throw fail("model.merges is missing or not an array");
            }
            Map<Long, Long> merges = new HashMap<>(node.size() * 2);
            for (int rank = 0; rank < node.size(); rank++) {
                JsonNode m = node.get(rank);
                String left;
                String right;
                // Older files write "a b"; newer ones ["a", "b"] so that tokens may contain spaces.
                if (m.isTextual()) {
                    String[] parts = m.textValue().split(" ", -1);
                    if (parts.length != 2) {
                        throw fail("model.merges[" + rank + "] \"" + m.textValue()
                                + "\" is not two tokens separated by one space");
                    }
                    left = parts[0];
                    right = parts[1];
                } else if (m.isArray() && m.size() == 2 && m.get(0).isTextual() && m.get(1).isTextual()) {
                    left = m.get(0).textValue();
                    right = m.get(1).textValue();
                } else {
                    throw fail("model.merges[" + rank + "] is neither a \"a b\" string nor a two-string array");
                }
                for (String[] check : new String[][] {{"uses", left}, {"uses", right}, {"produces", left + right}}) {
                    if (!vocab.containsKey(check[1])) {
                        throw fail("model.merges[" + rank + "] " + check[0] + " \"" + check[1]
                                + "\", which is not in model.vocab");
                    }
                }
                // A later duplicate overwrites an earlier one, as in the Rust crate.
                merges.put(pairKey(vocab.get(left), vocab.get(right)), ((long) rank << 32) | vocab.get(left + right));
            }
            return merges;
        }

        private void parseNormalizer(JsonNode node) {
            if (node.isMissingNode() || node.isNull()) {
                return;
            }
            String type = node.path("type").asText("");
            if (type.equals("NFC")) {
                nfc = true;
                return;
            }
            if (type.equals("Sequence")) {
                for (JsonNode n : node.path("normalizers")) {
                    parseNormalizer(n);
                }
                return;
            }
            throw fail("normalizer \"" + type + "\" is not supported (none or NFC only)");
        }

        private void parsePreTokenizer(JsonNode node) {
            if (node.isMissingNode() || node.isNull()) {
                throw fail("pre_tokenizer is missing, but byte-level BPE needs the ByteLevel pre-tokenizer");
            }
            String type = node.path("type").asText("");
            if (type.equals("ByteLevel")) {
                // Defaults are the Rust crate's, for files that leave the fields out.
                addPrefixSpace = node.path("add_prefix_space").asBoolean(true);
                useRegex = node.path("use_regex").asBoolean(true);
                return;
            }
            if (type.equals("Sequence")) {
                List<String> types = new ArrayList<>();
                for (JsonNode n : node.path("pretokenizers")) {
                    types.add(n.path("type").asText("?"));
                }
                if (types.equals(List.of("ByteLevel"))) {
                    parsePreTokenizer(node.path("pretokenizers").get(0));
                    return;
                }
                if (types.contains("Split") && types.contains("ByteLevel")) {
                    throw fail("pre_tokenizer Sequence " + types + " (a regex Split before ByteLevel, Llama-3/Qwen"
                            + " style) is not supported yet, only a single ByteLevel pre-tokenizer");
                }
                throw fail("pre_tokenizer Sequence " + types
                        + " is not supported (a single ByteLevel pre-tokenizer only)");
            }
            throw fail("pre_tokenizer \"" + type + "\" is not supported (byte-level BPE needs ByteLevel)");
        }

        private TandemException fail(String detail) {
            return new TandemException(where + ": " + detail + ".");
        }
    }

    // ---------------------------------------------------------------- added tokens

    /** Finds added tokens in text: leftmost first, and the longest among those starting there. */
    private static final class AddedTokenMatcher {
        record AddedToken(
                int id, String content, boolean special, boolean lstrip, boolean rstrip, boolean singleWord) {}

        record Match(int start, int end, int id) {}

        /** Candidates by first character, longest first. */
        private final Map<Character, AddedToken[]> byFirstChar = new HashMap<>();

        AddedTokenMatcher(List<AddedToken> tokens) {
            Map<Character, List<AddedToken>> groups = new HashMap<>();
            Set<String> seen = new HashSet<>();
            for (AddedToken t : tokens) {
                if (seen.add(t.content())) {
                    groups.computeIfAbsent(t.content().charAt(0), k -> new ArrayList<>()).add(t);
                }
            }
            groups.forEach((c, list) -> {
                list.sort(Comparator.comparingInt((AddedToken t) -> t.content().length()).reversed());
                byFirstChar.put(c, list.toArray(AddedToken[]::new));
            });
        }

        List<Match> split(String text, boolean includeSpecial) {
            if (byFirstChar.isEmpty()) {
                return List.of();
            }
            List<Match> matches = new ArrayList<>();
            int consumed = 0; // end of the previous match: lstrip must not reach back past it
            int i = 0;
            while (i < text.length()) {
                AddedToken token = longestAt(text, i, includeSpecial);
                if (token == null) {
                    i++;
                    continue;
                }
                int start = i;
                int end = i + token.content().length();
                // lstrip/rstrip tokens swallow the whitespace beside them (e.g. "<mask>" in RoBERTa).
                if (token.lstrip()) {
                    while (start > consumed && isWhiteSpace(text.charAt(start - 1))) {
                        start--;
                    }
                }
                if (token.rstrip()) {
                    while (end < text.length() && isWhiteSpace(text.charAt(end))) {
                        end++;
                    }
                }
                matches.add(new Match(start, end, token.id()));
                consumed = end;
                i = end;
            }
            return matches;
        }

        private AddedToken longestAt(String text, int i, boolean includeSpecial) {
            AddedToken[] candidates = byFirstChar.get(text.charAt(i));
            if (candidates == null) {
                return null;
            }
            for (AddedToken t : candidates) {
                if ((includeSpecial || !t.special()) && text.startsWith(t.content(), i)
                        && (!t.singleWord() || isWholeWord(text, i, i + t.content().length()))) {
                    return t;
                }
            }
            return null;
        }

        private static boolean isWholeWord(String text, int start, int end) {
            return (start == 0 || !isWordChar(text.charAt(start - 1)))
                    && (end == text.length() || !isWordChar(text.charAt(end)));
        }

        private static boolean isWordChar(char c) {
            return Character.isLetterOrDigit(c) || c == '_';
        }

        /** Unicode White_Space, as Rust's char::is_whitespace (Java's isWhitespace differs on NBSP, U+001C..1F). */
        private static boolean isWhiteSpace(char c) {
            return c == 0x85 || c == 0xA0 || c == 0x2007 || c == 0x202F
                    || (Character.isWhitespace(c) && (c < 0x1C || c > 0x1F));
        }
    }

    /** A growable int array, to avoid boxing on the encode path. */
    private static final class IntList {
        private int[] values;
        private int size;

        IntList(int capacity) {
            values = new int[Math.max(1, capacity)];
        }

        void add(int v) {
            if (size == values.length) {
                values = Arrays.copyOf(values, size * 2);
            }
            values[size++] = v;
        }

        void addAll(int[] vs) {
            if (size + vs.length > values.length) {
                values = Arrays.copyOf(values, Math.max(values.length * 2, size + vs.length));
            }
            System.arraycopy(vs, 0, values, size, vs.length);
            size += vs.length;
        }

        int[] toArray() {
            return Arrays.copyOf(values, size);
        }
    }
}
