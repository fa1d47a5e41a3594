package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;

/**
 * A {@code tokenizer.json} run as the Hugging Face {@code tokenizers} crate runs it: added tokens are
 * split off the raw text, each stretch between them is normalized, pre-tokenized and encoded piece by
 * piece with the model ({@link TokenModel}: BPE or WordPiece); {@link #withSpecialTokens} applies the
 * post-processor, and decoding goes through the decoder chain. This covers byte-level BPE (GPT-2, Llama
 * 3, Qwen), SentencePiece-style BPE with byte fallback (Llama 2, Mistral) and WordPiece (BERT).
 * Immutable after construction and safe for concurrent use.
 *
 * <p>Instances come from {@link Tokenizers#load}.
 */
final class PipelineTokenizer implements Tokenizer {

    private final TokenModel model;
    private final TextNormalizer normalizer;
    private final PreTokenizer preTokenizer;
    private final PostProcessor postProcessor;
    private final DecoderChain decoder;
    /** Added tokens matched in the raw text, and those ({@code normalized: true}) matched after normalizing. */
    private final AddedTokens rawAddedTokens;
    private final AddedTokens normalizedAddedTokens;
    private final Map<String, Integer> addedIds = new HashMap<>();
    private final int vocabSize;
    /** By id: the vocabulary string (or added-token content); null where no token has that id. */
    private final String[] contents;
    /** By id: whether it is a special added token. */
    private final boolean[] special;

    private PipelineTokenizer(TokenizerJson json, TokenModel model) {
        JsonNode root = json.root;
        this.model = model;
        this.normalizer = TextNormalizer.parse(root.path("normalizer"), "normalizer", json);
        this.preTokenizer = PreTokenizer.parse(root.path("pre_tokenizer"), "pre_tokenizer", json);
        this.postProcessor = PostProcessor.parse(root.path("post_processor"), "post_processor", json);
        this.decoder = DecoderChain.parse(root.path("decoder"), json);

        List<AddedTokens.Token> added = parseAddedTokens(root, json);
        List<AddedTokens.Token> raw = new ArrayList<>();
        List<AddedTokens.Token> normalized = new ArrayList<>();
        for (AddedTokens.Token t : added) {
            addedIds.put(t.content(), t.id());
            if (t.normalized()) {
                // Matched by their normalized content in normalized text, as the Rust crate does.
                normalized.add(new AddedTokens.Token(t.id(), normalizer.normalize(t.content()), t.special(),
                        t.lstrip(), t.rstrip(), t.singleWord(), true));
            } else {
                raw.add(t);
            }
        }
        this.rawAddedTokens = new AddedTokens(raw);
        this.normalizedAddedTokens = new AddedTokens(normalized);

        int maxId = -1;
        for (int id : model.vocab().values()) {
            maxId = Math.max(maxId, id);
        }
        for (AddedTokens.Token t : added) {
            maxId = Math.max(maxId, t.id());
        }
        this.vocabSize = maxId + 1;
        this.contents = new String[vocabSize];
        this.special = new boolean[vocabSize];
        model.vocab().forEach((token, id) -> contents[id] = token);
        // Added tokens win over a vocabulary entry with the same id, as in the Rust crate.
        for (AddedTokens.Token t : added) {
            contents[t.id()] = t.content();
            special[t.id()] = t.special();
        }
        checkSpecialIds(json);
    }

    /**
     * Builds the tokenizer from a read {@code tokenizer.json} and its {@code model}, already parsed.
     *
     * @throws dev.tandem.runtime.TandemException if the file uses something not supported
     */
    static PipelineTokenizer fromJson(TokenizerJson json, TokenModel model) {
        return new PipelineTokenizer(json, model);
    }

    private static List<AddedTokens.Token> parseAddedTokens(JsonNode root, TokenizerJson json) {
        JsonNode node = json.array(root, "added_tokens", "");
        List<AddedTokens.Token> tokens = new ArrayList<>();
        for (int i = 0; i < node.size(); i++) {
            JsonNode t = node.get(i);
            String path = "added_tokens[" + i + "]";
            JsonNode id = t.path("id");
            String content = t.path("content").asText("");
            if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0 || content.isEmpty()) {
                throw json.fail(path + " needs a non-negative integer \"id\" and a non-empty \"content\"");
            }
            boolean special = json.bool(t, "special", false, path);
            tokens.add(new AddedTokens.Token(id.intValue(), content, special,
                    json.bool(t, "lstrip", false, path), json.bool(t, "rstrip", false, path),
                    json.bool(t, "single_word", false, path),
                    // The Rust crate's default: special tokens are not normalized, others are.
                    json.bool(t, "normalized", !special, path)));
        }
        return tokens;
    }

    /** The post-processor's ids must be tokens, or decoding what it adds would fail later. */
    private void checkSpecialIds(TokenizerJson json) {
        IntList added = new IntList(8);
        added.addAll(postProcessor.apply(new int[0]));
        if (postProcessor.wrapsPairs()) {
            added.addAll(encoderInput(new int[0], new int[0]).ids());
        }
        for (int id : added.toArray()) {
            if (id >= vocabSize || contents[id] == null) {
                throw json.fail("post_processor adds token id " + id + ", which is not in the vocabulary");
            }
        }
    }

    // ---------------------------------------------------------------- encoding

    @Override
    public int[] encode(String text, boolean parseSpecialTokens) {
        Objects.requireNonNull(text, "text");
        IntList out = new IntList(Math.max(16, text.length() / 3));
        int start = 0;
        for (AddedTokens.Match m : rawAddedTokens.find(text, parseSpecialTokens)) {
            encodeStretch(text.substring(start, m.start()), start == 0, parseSpecialTokens, out);
            out.add(m.id());
            start = m.end();
        }
        encodeStretch(text.substring(start), start == 0, parseSpecialTokens, out);
        return out.toArray();
    }

    /** One stretch of raw text between added tokens: normalized on its own, as the Rust crate does. */
    private void encodeStretch(String raw, boolean atTextStart, boolean parseSpecialTokens, IntList out) {
        if (raw.isEmpty()) {
            return;
        }
        String text = normalizer.normalize(raw);
        int start = 0;
        for (AddedTokens.Match m : normalizedAddedTokens.find(text, parseSpecialTokens)) {
            encodePieces(text.substring(start, m.start()), atTextStart && start == 0, out);
            out.add(m.id());
            start = m.end();
        }
        encodePieces(text.substring(start), atTextStart && start == 0, out);
    }

    private void encodePieces(String text, boolean atTextStart, IntList out) {
        for (PreTokenizer.Piece piece : preTokenize(text, atTextStart)) {
            model.encode(piece.text(), out);
        }
    }

    private List<PreTokenizer.Piece> preTokenize(String normalized, boolean atTextStart) {
        if (normalized.isEmpty()) {
            return List.of();
        }
        List<PreTokenizer.Piece> pieces = new ArrayList<>();
        preTokenizer.split(new PreTokenizer.Piece(normalized, atTextStart), pieces);
        return pieces;
    }

    /**
     * The pieces the model encodes for {@code text}, taken as one stretch free of added tokens at the
     * start of the input: normalized and pre-tokenized (byte-level pieces spelled as such, e.g.
     * {@code "Ġworld"}). For tests.
     */
    List<String> preTokenize(String text) {
        return preTokenize(normalizer.normalize(text), true).stream().map(PreTokenizer.Piece::text).toList();
    }

    @Override
    public int[] withSpecialTokens(int[] ids) {
        return postProcessor.apply(ids.clone());
    }

    @Override
    public EncoderInput encoderInput(int[] ids) {
        return postProcessor.single(new EncoderInput(ids.clone(), new int[ids.length]));
    }

    @Override
    public EncoderInput encoderInput(int[] first, int[] second) {
        int[] secondTypes = new int[second.length];
        Arrays.fill(secondTypes, 1); // the Rust crate encodes the second sequence of a pair with type id 1
        return postProcessor.pair(new EncoderInput(first.clone(), new int[first.length]),
                new EncoderInput(second.clone(), secondTypes));
    }

    // ---------------------------------------------------------------- decoding and lookups

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
        List<String> tokens = new ArrayList<>(ids.length);
        for (int id : ids) {
            String token = tokenContent(id);
            if (!(skipSpecialTokens && special[id])) {
                tokens.add(token);
            }
        }
        return decoder.decode(tokens);
    }

    @Override
    public StreamingDecoder streamingDecoder() {
        return new StreamingDecoder(decoder, this::tokenContent);
    }

    @Override
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public OptionalInt tokenId(String tokenContent) {
        Integer id = addedIds.get(tokenContent);
        if (id == null) {
            id = model.vocab().get(tokenContent);
        }
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    @Override
    public String tokenContent(int id) {
        if (id < 0 || id >= vocabSize) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + vocabSize + ")");
        }
        if (contents[id] == null) {
            throw new IllegalArgumentException("token id " + id + " is not assigned to any token");
        }
        return contents[id];
    }

    @Override
    public byte[] tokenBytes(int id) {
        return decoder.renderMidText(tokenContent(id));
    }

    /** Number of words in the BPE model's encode cache (0 for other models); for tests. */
    int cachedWords() {
        return model instanceof BpeModel bpe ? bpe.cachedWords() : 0;
    }
}
