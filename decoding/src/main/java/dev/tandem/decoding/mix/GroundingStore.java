package dev.tandem.decoding.mix;





import com.fasterxml.jackson.databind.JsonNode;



import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.Generator;
import dev.tandem.runtime.Digests;
import dev.tandem.runtime.AtomicFiles;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.JsonLines;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.weights.WeightStore;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * The grounding store of CAAD ({@link LogitMixDecoding#grounded}; Nguyen, Gupta &amp; Le, "CAAD: Context-Aware Adaptive
 * Decoding for Truthful Text Generation", 2025): one pair per continuation token of a file of examples, each pair the
 * model's <b>final normalised hidden state</b> at the position that predicts the token (the LM head's input; what
 * transformers returns as the last hidden state) and the model's next-token logits there. Retrieval for a state h:
 * <pre>
 *   s_i  = h·k_i / (|h|·|k_i|)                              every stored state k_i, in double (0 where a norm is 0)
 *   I    = the n largest s_i                               the lower index first on ties; every pair when fewer
 *   mean = Σ_{i∈I} max(s_i, 0)·ℓ_i / Σ_{i∈I} max(s_i, 0)    in double, added from the most similar; zeros when the sum is 0
 * </pre>
 * A neighbour that points away from h (negative similarity) gets no weight: a negative weight would add its logits with
 * their signs flipped, pushing away from what that context predicts rather than ignoring it.
 *
 * <p><b>The grounding file</b> is JSON lines, one example a line: {@code {"text": TEXT, "continuation": TEXT}} (blank
 * lines skipped, no other field). The text is encoded as plain decoding encodes a prompt (the tokenizer's special
 * tokens, BOS), the continuation as plain text ({@link dev.tandem.transformer.tokenizer.Tokenizer#encode(String)}, nothing
 * added); one pass over text + continuation gives the pairs of every continuation token.
 *
 * <p><b>The store file</b> is built once and saved beside the grounding file as {@code FILE.MODEL.caad-store} (MODEL:
 * the model directory's name), written to a temporary file and moved into place, so a reader never sees half a store.
 * Opening reuses it only while its header matches: the format version, the SHA-256 of the grounding file, the model's
 * directory name and fingerprint ({@link #modelFingerprint}), hidden size and vocabulary; otherwise it is built again.
 * Layout, little-endian: a 256-byte header ({@code TNDMCAAD}, version, pair count, hidden size, vocabulary size, the
 * two SHA-256 digests, the model's name), the grounding-file line of each pair (int32), zeros to a multiple of 64 bytes,
 * then each pair's state (hidden f32) followed by its logits (vocab f32). The logits stay in the file, mapped; the
 * states are read into memory.
 *
 * <p>Immutable once opened: tasks on many threads may retrieve from one store.
 */
public final class GroundingStore {
    /** The end of every sentence that refuses a line: how the lines are written. */
    static final String LINE_FORMS = "write each example as {\"text\": TEXT, \"continuation\": TEXT}, one per line";
    /** The store file's name ends with this. */
    public static final String SUFFIX = ".caad-store";

    private static final byte[] MAGIC = "TNDMCAAD".getBytes(StandardCharsets.US_ASCII);
    private static final int VERSION = 1;
    private static final int HEADER_BYTES = 256;
    private static final int NAME_OFFSET = 128;
    private static final int ALIGN = 64;
    /** The most pairs a store holds: far more than a few examples make, and every offset stays well inside a long. */
    static final int MAX_PAIRS = 1 << 24;
    /** Weight files up to this size are fingerprinted whole, larger ones by {@value #SAMPLES} windows. */
    private static final long WHOLE_FILE = 8L << 20;
    private static final int SAMPLES = 64;
    private static final int WINDOW = 64 << 10;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The stored pairs nearest a state, most similar first, with their cosine similarities. */
    public record Neighbours(int[] pairs, double[] similarities) {
        public Neighbours {
            if (pairs.length != similarities.length) {
                throw new IllegalArgumentException(pairs.length + " pairs but " + similarities.length + " similarities");
            }
            pairs = pairs.clone();
            similarities = similarities.clone();
        }

        @Override
        public int[] pairs() {
            return pairs.clone();
        }

        @Override
        public double[] similarities() {
            return similarities.clone();
        }
    }

    private final Path file;
    private final Path groundingFile;
    private final Path modelDirectory;
    private final boolean built;
    private final int hidden;
    private final int vocab;
    private final int[] lines;
    private final float[][] states;
    private final double[] norms;
    private final MemorySegment data;
    private final long pairsOffset;

    private GroundingStore(Path file, Path groundingFile, Path modelDirectory, boolean built, int hidden, int vocab, int[] lines,
                           float[][] states, MemorySegment data, long pairsOffset) {
        this.file = file;
        this.groundingFile = groundingFile;
        this.modelDirectory = modelDirectory;
        this.built = built;
        this.hidden = hidden;
        this.vocab = vocab;
        this.lines = lines;
        this.states = states;
        this.data = data;
        this.pairsOffset = pairsOffset;
        this.norms = new double[states.length];
        for (int i = 0; i < states.length; i++) {
            norms[i] = Math.sqrt(dot(states[i], states[i]));
        }
    }

    /** {@link #open(LanguageModel, Path, Progress)} without progress reports. */
    public static GroundingStore open(LanguageModel model, Path groundingFile) {
        return open(model, groundingFile, Progress.NONE);
    }

    /**
     * The store of {@code groundingFile} for {@code model}: the saved one beside the file while it matches both, else
     * built now (a pass of the model per example; {@code progress} sees the pairs done of the pairs to make) and saved.
     *
     * @throws TandemException if the grounding file is missing, unreadable, not UTF-8, holds a line that is not an
     *                         example or no example at all, or an example longer than the model's context; if a file
     *                         that is not a grounding store stands where the store goes, or the store cannot be written
     */
    public static GroundingStore open(LanguageModel model, Path groundingFile, Progress progress) {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(progress, "progress");
        byte[] bytes = readGroundingFile(groundingFile);
        ModelConfig config = model.config();
        Header want = new Header(0, config.hiddenSize(), config.vocabSize(), Digests.sha256().digest(bytes),
                modelFingerprint(model.directory()), modelName(model));
        Path store = storeFile(model, groundingFile);
        GroundingStore saved = load(store, want, groundingFile, model, false);
        if (saved != null) {
            return saved;
        }
        build(model, groundingFile, bytes, want, store, progress);
        GroundingStore fresh = load(store, want, groundingFile, model, true);
        if (fresh == null) {
            throw new TandemException("the grounding store " + store + " changed while it was being built; run again.");
        }
        return fresh;
    }

    /** Where the store of {@code groundingFile} for {@code model} is saved: {@code FILE.MODEL.caad-store} beside it. */
    public static Path storeFile(LanguageModel model, Path groundingFile) {
        String safe = modelName(model).replaceAll("[^A-Za-z0-9._-]+", "-");
        return groundingFile.resolveSibling(groundingFile.getFileName() + "." + safe + SUFFIX);
    }

    /** The store file. */
    public Path file() {
        return file;
    }

    /** The grounding file the store was built from. */
    public Path groundingFile() {
        return groundingFile;
    }

    /** The directory of the model the store was built with (absolute). */
    public Path modelDirectory() {
        return modelDirectory;
    }

    /** Whether {@link #open} built the store (the saved one was missing or stale) rather than reusing it. */
    public boolean built() {
        return built;
    }

    /** The number of pairs: the continuation tokens of every example. */
    public int size() {
        return states.length;
    }

    public int hiddenSize() {
        return hidden;
    }

    public int vocabSize() {
        return vocab;
    }

    /** The grounding file's line (from 1) that pair {@code i} came from. */
    public int line(int i) {
        return lines[Objects.checkIndex(i, lines.length)];
    }

    /** Pair {@code i}'s state: the final normalised hidden state that predicts its token (a copy). */
    public float[] state(int i) {
        return states[Objects.checkIndex(i, states.length)].clone();
    }

    /** Pair {@code i}'s next-token logits (a copy). */
    public float[] logits(int i) {
        float[] out = new float[vocab];
        copyLogits(i, out);
        return out;
    }

    private void copyLogits(int i, float[] into) {
        long at = pairsOffset + ((long) Objects.checkIndex(i, states.length) * (hidden + vocab) + hidden) * Float.BYTES;
        MemorySegment.copy(data, F32, at, into, 0, vocab);
    }

    /**
     * The {@code n} pairs whose states are most cosine-similar to {@code state} (every pair when the store holds fewer),
     * most similar first, the lower index first on ties.
     */
    public Neighbours nearest(float[] state, int n) {
        requireState(state);
        if (n < 1) {
            throw new IllegalArgumentException("the number of neighbours must be at least 1, but was " + n + ".");
        }
        int k = Math.min(n, states.length);
        int[] best = new int[k];
        double[] sims = new double[k];
        int filled = 0;
        double norm = Math.sqrt(dot(state, state));
        for (int i = 0; i < states.length; i++) {
            double s = norm == 0 || norms[i] == 0 ? 0 : dot(state, states[i]) / (norm * norms[i]);
            if (filled == k && !(s > sims[k - 1])) {
                continue; // an equal similarity keeps the earlier pair
            }
            int at = Math.min(filled, k - 1);
            while (at > 0 && s > sims[at - 1]) {
                at--;
            }
            int moved = Math.min(filled, k - 1) - at;
            System.arraycopy(best, at, best, at + 1, moved);
            System.arraycopy(sims, at, sims, at + 1, moved);
            best[at] = i;
            sims[at] = s;
            filled = Math.min(filled + 1, k);
        }
        return new Neighbours(best, sims);
    }

    /**
     * The similarity-weighted mean of the neighbours' logits, Σ max(sᵢ, 0)·ℓᵢ / Σ max(sᵢ, 0) in double (added in the
     * neighbours' order), rounded to float; zeros where no neighbour has a positive similarity.
     */
    public float[] meanLogits(Neighbours neighbours) {
        double[] sum = new double[vocab];
        double total = 0;
        float[] row = new float[vocab];
        int[] pairs = neighbours.pairs;
        for (int r = 0; r < pairs.length; r++) {
            double w = Math.max(neighbours.similarities[r], 0);
            if (w == 0) {
                continue;
            }
            total += w;
            copyLogits(pairs[r], row);
            for (int t = 0; t < vocab; t++) {
                sum[t] += w * row[t];
            }
        }
        float[] out = new float[vocab];
        if (total > 0) {
            for (int t = 0; t < vocab; t++) {
                out[t] = (float) (sum[t] / total);
            }
        }
        return out;
    }

    /** The grounding row of a state: the mean logits of its {@code n} nearest pairs. */
    public float[] groundingRow(float[] state, int n) {
        return meanLogits(nearest(state, n));
    }

    private void requireState(float[] state) {
        if (state.length != hidden) {
            throw new IllegalArgumentException("a state of " + state.length + " values, but the store's states have " + hidden);
        }
    }

    private static double dot(float[] a, float[] b) {
        double s = 0;
        for (int j = 0; j < a.length; j++) {
            s += (double) a[j] * b[j];
        }
        return s;
    }

    // ---- the grounding file ----

    /** One line of the grounding file. */
    record Example(int line, String text, String continuation) {
    }

    private static byte[] readGroundingFile(Path file) {
        Objects.requireNonNull(file, "groundingFile");
        if (Files.isDirectory(file)) {
            throw new TandemException("the grounding file " + file + " is a directory; give a JSON-lines file.");
        }
        try {
            if (Files.size(file) > Integer.MAX_VALUE - 16) {
                throw new TandemException("the grounding file " + file + " is larger than 2 GB; a grounding store is built from a "
                        + "few examples.");
            }
            return Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new TandemException("the grounding file " + file + " does not exist.");
        } catch (IOException e) {
            throw new TandemException("cannot read the grounding file " + file + " (" + IoErrors.reason(e) + ").", e);
        }
    }

    /**
     * The examples of a grounding file: strict UTF-8 and one JSON object a line, a byte-order mark on the first line and
     * blank lines skipped; a bad line is one sentence naming the file, the line and the field.
     */
    static List<Example> parse(Path file, byte[] bytes) {
        String tail = "; " + LINE_FORMS + ".";
        List<Example> examples = new ArrayList<>();
        try {
            new JsonLines(new java.io.ByteArrayInputStream(bytes), file.toString()).forEach(LINE_FORMS,
                    (lineNumber, where, node) -> examples.add(example(where, lineNumber, node, tail)));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e); // an array in memory: not reached
        }
        if (examples.isEmpty()) {
            throw new TandemException("the grounding file " + file + " holds no examples" + tail);
        }
        return examples;
    }

    private static Example example(String where, int lineNumber, JsonNode node, String tail) {
        if (!node.isObject()) {
            throw new TandemException(where + " is a JSON " + typeName(node) + ", not an object" + tail);
        }
        for (Map.Entry<String, JsonNode> field : node.properties()) {
            if (!field.getKey().equals("text") && !field.getKey().equals("continuation")) {
                throw new TandemException(where + " has the field \"" + field.getKey() + "\", which a grounding example does not "
                        + "take; give \"text\" and \"continuation\".");
            }
        }
        String text = textField(where, node, "text", tail);
        String continuation = textField(where, node, "continuation", tail);
        if (continuation.isEmpty()) {
            throw new TandemException(where + " has an empty \"continuation\"; the store holds a pair per continuation token, so "
                    + "give at least one.");
        }
        return new Example(lineNumber, text, continuation);
    }

    private static String textField(String where, JsonNode node, String name, String tail) {
        JsonNode value = node.get(name);
        if (value == null) {
            throw new TandemException(where + " has no \"" + name + "\" field" + tail);
        }
        if (!value.isTextual()) {
            throw new TandemException(where + " has a \"" + name + "\" that is a JSON " + typeName(value) + ", not a string.");
        }
        return value.textValue();
    }

    private static String typeName(JsonNode node) {
        return node.getNodeType().name().toLowerCase(Locale.ROOT);
    }

    // ---- building ----

    /** An example's sequence: its text as a prompt, then its continuation's tokens. */
    private record Encoded(Example example, int[] prompt, int[] continuation) {
    }

    private static List<Encoded> encode(LanguageModel model, Path file, List<Example> examples) {
        Generator prompts = new Generator(model);
        ModelConfig config = model.config();
        List<Encoded> out = new ArrayList<>();
        for (Example e : examples) {
            String where = file + " line " + e.line();
            int[] prompt;
            try {
                prompt = prompts.promptIds(GenerationRequest.of(e.text()));
            } catch (TandemException x) {
                throw new TandemException(where + "'s \"text\": " + x.getMessage(), x);
            }
            int[] continuation = model.tokenizer().encode(e.continuation());
            if (continuation.length == 0) {
                throw new TandemException(where + " has a \"continuation\" that encodes to no tokens; the store holds a pair per "
                        + "continuation token, so give at least one.");
            }
            for (int id : continuation) {
                if (id < 0 || id >= config.vocabSize()) {
                    throw new TandemException(where + "'s \"continuation\" encodes to token id " + id + ", outside the vocabulary of "
                            + config.vocabSize() + " (config.json vocab_size).");
                }
            }
            long tokens = (long) prompt.length + continuation.length;
            if (tokens > config.maxContext()) {
                throw new TandemException(where + "'s text and continuation come to " + tokens + " tokens, more than the model's "
                        + "context of " + config.maxContext() + " tokens (" + config.maxContextSource() + ").");
            }
            out.add(new Encoded(e, prompt, continuation));
        }
        return out;
    }

    /** Parses and encodes every example first (so a bad line fails before any pass), then writes the store atomically. */
    private static void build(LanguageModel model, Path groundingFile, byte[] bytes, Header want, Path store, Progress progress) {
        List<Encoded> examples = encode(model, groundingFile, parse(groundingFile, bytes));
        long total = 0;
        for (Encoded e : examples) {
            total += e.continuation().length;
        }
        if (total > MAX_PAIRS) {
            throw new TandemException("the grounding file " + groundingFile + " makes " + total + " pairs (continuation tokens), more "
                    + "than the " + MAX_PAIRS + " a store holds.");
        }
        int count = (int) total;
        Header header = new Header(count, want.hidden(), want.vocab(), want.sourceHash(), want.fingerprint(), want.modelName());
        Path abs = store.toAbsolutePath();
        try {
            AtomicFiles.write(abs, out -> {
                writeFully(out, header.bytes());
                ByteBuffer lineBuf = ByteBuffer.allocate((int) (pairsOffset(count) - HEADER_BYTES)).order(ByteOrder.LITTLE_ENDIAN);
                for (Encoded e : examples) {
                    for (int j = 0; j < e.continuation().length; j++) {
                        lineBuf.putInt(e.example().line());
                    }
                }
                writeFully(out, lineBuf.array());
                ByteBuffer pair = ByteBuffer.allocate((want.hidden() + want.vocab()) * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
                long done = 0;
                progress.update(0, count);
                for (Encoded e : examples) {
                    ForwardResult pass = pass(model, e);
                    for (int j = 0; j < e.continuation().length; j++) {
                        float[] state = pass.normedHidden(0, j);
                        float[] logits = pass.logits(0, j);
                        requireFinite(state, logits, groundingFile, e);
                        pair.clear();
                        pair.asFloatBuffer().put(state).put(logits);
                        writeFully(out, pair.array());
                    }
                    done += e.continuation().length;
                    progress.update(done, count);
                }
            });
        } catch (IOException e) {
            throw new TandemException("cannot write the grounding store " + store + " (" + IoErrors.reason(e) + "); it is saved beside "
                    + "the grounding file, so that folder must be writable.", e);
        }
    }

    /**
     * One pass over the example's text and all but the last continuation token, with the logits and normed state of
     * each row that predicts a continuation token (the text's last row, then each continuation row).
     */
    private static ForwardResult pass(LanguageModel model, Encoded e) {
        int k = e.prompt().length;
        int m = e.continuation().length;
        int[] feed = Arrays.copyOf(e.prompt(), k + m - 1);
        System.arraycopy(e.continuation(), 0, feed, k, m - 1);
        int[] rows = new int[m];
        Arrays.setAll(rows, j -> k - 1 + j);
        try (KvSequence kv = model.newSequence()) {
            return model.forward(Batch.of(Batch.Entry.continuation(kv, feed).withLogitRows(rows).withNormedRows(rows)));
        }
    }

    private static void requireFinite(float[] state, float[] logits, Path file, Encoded e) {
        for (float[] row : List.of(state, logits)) {
            for (float v : row) {
                if (!Float.isFinite(v)) {
                    throw new TandemException("the model's " + (row == state ? "hidden states" : "logits") + " on " + file + " line "
                            + e.example().line() + " are not finite (" + v + "), so no grounding store can be built from them.");
                }
            }
        }
    }

    private static void writeFully(FileChannel out, byte[] bytes) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        while (b.hasRemaining()) {
            out.write(b);
        }
    }

    // ---- the store file ----

    /** What a store file's header holds; {@code count} is 0 in what {@link #open} wants (any count will do). */
    private record Header(int count, int hidden, int vocab, byte[] sourceHash, byte[] fingerprint, String modelName) {
        byte[] bytes() {
            ByteBuffer b = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            b.put(MAGIC).putInt(VERSION).putInt(count).putInt(hidden).putInt(vocab);
            b.position(32);
            b.put(sourceHash).put(fingerprint);
            byte[] name = modelName.getBytes(StandardCharsets.UTF_8);
            b.position(NAME_OFFSET);
            b.put(name, 0, Math.min(name.length, HEADER_BYTES - NAME_OFFSET));
            return b.array();
        }

        /** The header of {@code b} (at least {@link #HEADER_BYTES}), or null when its version is another. */
        static Header read(ByteBuffer b) {
            b.order(ByteOrder.LITTLE_ENDIAN).position(MAGIC.length);
            if (b.getInt() != VERSION) {
                return null;
            }
            int count = b.getInt();
            int hidden = b.getInt();
            int vocab = b.getInt();
            byte[] source = new byte[32];
            byte[] fingerprint = new byte[32];
            b.position(32);
            b.get(source).get(fingerprint);
            byte[] name = new byte[HEADER_BYTES - NAME_OFFSET];
            b.position(NAME_OFFSET);
            b.get(name);
            int len = 0;
            while (len < name.length && name[len] != 0) {
                len++;
            }
            return new Header(count, hidden, vocab, source, fingerprint, new String(name, 0, len, StandardCharsets.UTF_8));
        }

        /** Whether a store with this header was built from what {@code want} describes. */
        boolean matches(Header want) {
            return count > 0 && hidden == want.hidden && vocab == want.vocab && Arrays.equals(sourceHash, want.sourceHash)
                    && Arrays.equals(fingerprint, want.fingerprint) && modelName.equals(truncatedName(want.modelName));
        }
    }

    /** The model name as a header keeps it: its first bytes, cut at a character. */
    private static String truncatedName(String name) {
        byte[] bytes = name.getBytes(StandardCharsets.UTF_8);
        int max = HEADER_BYTES - NAME_OFFSET;
        if (bytes.length <= max) {
            return name;
        }
        int len = max;
        while (len > 0 && (bytes[len] & 0xC0) == 0x80) {
            len--;
        }
        return new String(bytes, 0, len, StandardCharsets.UTF_8);
    }

    private static long pairsOffset(int count) {
        long end = HEADER_BYTES + (long) count * Integer.BYTES;
        return (end + ALIGN - 1) / ALIGN * ALIGN;
    }

    /**
     * The store at {@code store} when it matches {@code want}; null when it is absent, stale or cut short (then it is
     * built again).
     *
     * @throws TandemException if the file there is not a grounding store
     */
    private static GroundingStore load(Path store, Header want, Path groundingFile, LanguageModel model, boolean built) {
        if (Files.isDirectory(store)) {
            throw new TandemException("the grounding store " + store + " is a directory; move it away so that the store can be "
                    + "saved there.");
        }
        if (!Files.exists(store)) {
            return null;
        }
        try (FileChannel in = FileChannel.open(store, StandardOpenOption.READ)) {
            long size = in.size();
            ByteBuffer head = ByteBuffer.allocate(HEADER_BYTES);
            while (head.hasRemaining() && in.read(head, head.position()) > 0) {
                // read on: a header may come in pieces
            }
            if (head.position() < MAGIC.length || !Arrays.equals(Arrays.copyOf(head.array(), MAGIC.length), MAGIC)) {
                throw new TandemException(store + " exists but is not a Tandem grounding store; move it away or delete it so that "
                        + "the store can be saved there.");
            }
            if (head.position() < HEADER_BYTES) {
                return null;
            }
            Header have = Header.read(head.flip());
            if (have == null || !have.matches(want)) {
                return null;
            }
            int count = have.count();
            if (count > MAX_PAIRS) {
                return null;
            }
            long pairs = pairsOffset(count);
            if (size != pairs + (long) count * (have.hidden() + have.vocab()) * Float.BYTES) {
                return null;
            }
            MemorySegment data = in.map(FileChannel.MapMode.READ_ONLY, 0, size, Arena.ofAuto());
            int[] lines = new int[count];
            float[][] states = new float[count][have.hidden()];
            for (int i = 0; i < count; i++) {
                lines[i] = data.get(I32, HEADER_BYTES + (long) i * Integer.BYTES);
                MemorySegment.copy(data, F32, pairs + (long) i * (have.hidden() + have.vocab()) * Float.BYTES, states[i], 0,
                        have.hidden());
            }
            return new GroundingStore(store, groundingFile, model.directory().toAbsolutePath().normalize(), built, have.hidden(),
                    have.vocab(), lines, states, data, pairs);
        } catch (IOException e) {
            throw new TandemException("cannot read the grounding store " + store + " (" + IoErrors.reason(e) + ").", e);
        }
    }

    // ---- the model's identity ----

    private static String modelName(LanguageModel model) {
        Path name = model.directory().toAbsolutePath().normalize().getFileName();
        return name == null ? "model" : name.toString();
    }

    /**
     * A SHA-256 fingerprint of what a store depends on in a model directory ({@code config.json}, the tokenizer file and
     * the weights, {@code *.safetensors} and their index) or the whole of a GGUF file, each by its name, its size and its bytes — whole up to 8 MiB,
     * else {@value #SAMPLES} windows of 64 KiB spread evenly from its first byte to its last. A change of the weights that
     * keeps every size and misses every window goes unseen: delete the store to have it built again.
     *
     * @throws TandemException if the directory cannot be read
     */
    static byte[] modelFingerprint(Path dir) {
        MessageDigest sha = Digests.sha256();
        try {
            List<Path> files;
            if (Files.isRegularFile(dir)) {
                files = List.of(dir); // a GGUF file holds the configuration, the tokenizer and the weights
            } else try (Stream<Path> list = Files.list(dir)) {
                Path tokenizer = ModelLoader.tokenizerFile(dir).getFileName();
                files = list.filter(Files::isRegularFile).filter(p -> {
                    String n = p.getFileName().toString();
                    return n.equals(ModelConfig.CONFIG_FILE) || p.getFileName().equals(tokenizer) || n.endsWith(".safetensors")
                            || n.equals(WeightStore.INDEX_FILE);
                }).sorted().toList();
            }
            for (Path f : files) {
                sha.update(f.getFileName().toString().getBytes(StandardCharsets.UTF_8));
                try (FileChannel in = FileChannel.open(f, StandardOpenOption.READ)) {
                    long size = in.size();
                    sha.update(ByteBuffer.allocate(Long.BYTES).putLong(size).array());
                    if (size <= WHOLE_FILE) {
                        digest(in, 0, size, sha);
                    } else {
                        for (int s = 0; s < SAMPLES; s++) {
                            digest(in, (size - WINDOW) * s / (SAMPLES - 1), WINDOW, sha);
                        }
                    }
                }
            }
        } catch (IOException e) {
            throw new TandemException("cannot read the model directory " + dir + " to fingerprint it (" + IoErrors.reason(e) + ").", e);
        }
        return sha.digest();
    }

    private static void digest(FileChannel in, long from, long length, MessageDigest sha) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate((int) Math.min(length, 1 << 20));
        for (long at = from, end = from + length; at < end; ) {
            buf.clear().limit((int) Math.min(buf.capacity(), end - at));
            int n = in.read(buf, at);
            if (n < 0) {
                throw new IOException("the file ended early");
            }
            sha.update(buf.array(), 0, n);
            at += n;
        }
    }

}
