package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.regex.Matcher;

/**
 * The {@code decoder} of {@code tokenizer.json}: turns token strings back into text, step by step as
 * the Rust crate's decoders do ({@code decode_chain} over the list of tokens, then joining the result).
 *
 * <p>Every step runs as a stream: tokens go in one at a time and each step passes on what can no longer
 * change. {@link Tokenizer#decode} is the same stream fed every token and ended, so streaming and batch
 * decoding agree by construction. Two kinds of steps join tokens ("fuse"): {@code ByteLevel} (bytes to
 * UTF-8 text) and {@code Fuse}; after them the following steps see a single token arriving in parts,
 * as they would see the one joined token in the Rust crate. What a stream holds back:
 * <ul>
 *   <li>{@code ByteLevel}: an unfinished UTF-8 sequence at the end;
 *   <li>{@code ByteFallback}: a run of {@code <0xNN>} tokens until it ends, because the Rust crate turns
 *       a run that is not valid UTF-8 into one U+FFFD per byte, even a valid start of it (a run is
 *       released as soon as it is known to be invalid);
 *   <li>{@code Replace} after a fusing step: a tail that may begin a match of a literal pattern, or all
 *       text for a regex pattern (which could match across tokens);
 *   <li>{@code Strip} after a fusing step: trailing characters that {@code stop} may remove.
 * </ul>
 */
final class DecoderChain {

    /** The supported {@code type}s. */
    private static final List<String> TYPES =
            List.of("ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace", "WordPiece", "Sequence");

    private static final String REPLACEMENT_CHARACTER = "\uFFFD";

    private final List<Step> steps;

    private DecoderChain(List<Step> steps) {
        this.steps = steps;
    }

    /** The decoder {@code node} describes; null or absent joins the tokens with spaces, as the Rust crate. */
    static DecoderChain parse(JsonNode node, TokenizerJson json) {
        if (TokenizerJson.absent(node)) {
            return new DecoderChain(List.of(new Step.JoinWithSpaces()));
        }
        List<Step> steps = new ArrayList<>();
        addSteps(node, "decoder", json, steps);
        boolean fused = false;
        for (Step step : steps) {
            if (fused && (step instanceof Step.ByteLevel || step instanceof Step.ByteFallback
                    || step instanceof Step.WordPiece)) {
                throw json.fail("decoder " + step.getClass().getSimpleName() + " after ByteLevel or Fuse (which"
                        + " join the tokens into one text) is not supported");
            }
            fused |= step instanceof Step.ByteLevel || step instanceof Step.Fuse;
        }
        return new DecoderChain(List.copyOf(steps));
    }

    private static void addSteps(JsonNode node, String path, TokenizerJson json, List<Step> steps) {
        switch (json.type(node, path, TYPES)) {
            case "ByteLevel" -> steps.add(new Step.ByteLevel());
            case "ByteFallback" -> steps.add(new Step.ByteFallback());
            case "Fuse" -> steps.add(new Step.Fuse());
            case "Replace" -> steps.add(new Step.Replace(json.pattern(node, path), json.text(node, "content", path)));
            case "Strip" -> steps.add(new Step.Strip(json.character(node, "content", path).codePointAt(0),
                    json.nonNegativeInt(node, "start", 0, path), json.nonNegativeInt(node, "stop", 0, path)));
            case "Metaspace" -> {
                boolean stripFirst = !json.prependScheme(node, path).equals("never");
                steps.add(new Step.Metaspace(json.character(node, "replacement", path), stripFirst));
            }
            case "WordPiece" -> {
                JsonNode prefix = node.path("prefix");
                // Defaults are the Rust crate's, for files that leave the fields out.
                steps.add(new Step.WordPiece(TokenizerJson.absent(prefix) ? "##" : json.text(node, "prefix", path),
                        json.bool(node, "cleanup", true, path)));
            }
            case "Sequence" -> {
                JsonNode decoders = json.array(node, "decoders", path);
                for (int i = 0; i < decoders.size(); i++) {
                    addSteps(decoders.get(i), path + ".decoders[" + i + "]", json, steps);
                }
            }
            default -> throw new AssertionError("type checked above");
        }
    }

    /** A new stream; feed it tokens, end it once, and take the text it has produced as it goes. */
    Stream open() {
        Stream stream = new Stream();
        Stage stage = stream.sink;
        for (Step step : steps.reversed()) {
            stage = step.stage(stage);
        }
        stream.first = stage;
        return stream;
    }

    /** All of {@code tokens} decoded. */
    String decode(List<String> tokens) {
        Stream stream = open();
        for (String token : tokens) {
            stream.push(token);
        }
        stream.end();
        return stream.take();
    }

    /**
     * The bytes {@code token} contributes when it stands in the middle of a text: what the steps make of
     * it before UTF-8 decoding (byte-level and {@code <0xNN>} tokens give raw bytes, which may be part of
     * a character), without the rules for the start or end of the text. A replacement that could match
     * across tokens is applied to this token alone.
     */
    byte[] renderMidText(String token) {
        String text = token;
        boolean fused = false;
        for (Step step : steps) {
            switch (step) {
                case Step.ByteLevel _ -> {
                    return ByteLevel.bytesOf(text); // the remaining steps act on text, not raw bytes
                }
                case Step.ByteFallback _ -> {
                    int value = byteTokenValue(text);
                    if (value >= 0) {
                        return new byte[] {(byte) value};
                    }
                }
                case Step.Replace r -> text = r.pattern().replaceAll(text, r.content());
                case Step.Metaspace m -> text = text.replace(m.replacement(), " ");
                case Step.WordPiece w -> text = w.render(text, false);
                case Step.JoinWithSpaces _ -> text = " " + text;
                case Step.Strip s -> text = fused ? text : s.stripToken(text); // fused: only the text's ends
                case Step.Fuse _ -> fused = true;
            }
        }
        return text.getBytes(StandardCharsets.UTF_8);
    }

    /** The byte a {@code <0xNN>} token stands for, or -1 for any other token (ByteFallback's test). */
    static int byteTokenValue(String token) {
        if (token.length() != 6 || !token.startsWith("<0x") || token.charAt(5) != '>') {
            return -1;
        }
        char high = token.charAt(3);
        char low = token.charAt(4);
        return HexFormat.isHexDigit(high) && HexFormat.isHexDigit(low)
                ? HexFormat.fromHexDigit(high) * 16 + HexFormat.fromHexDigit(low) : -1;
    }

    /** One decoder step as parsed. */
    private sealed interface Step {
        /** The stage that runs this step in a stream, passing its output to {@code next}. */
        Stage stage(Stage next);

        record ByteLevel() implements Step {
            @Override
            public Stage stage(Stage next) {
                return new ByteLevelStage(next);
            }
        }

        record ByteFallback() implements Step {
            @Override
            public Stage stage(Stage next) {
                return new ByteFallbackStage(next);
            }
        }

        record Fuse() implements Step {
            @Override
            public Stage stage(Stage next) {
                return new FuseStage(next);
            }
        }

        record Replace(TextPattern pattern, String content) implements Step {
            @Override
            public Stage stage(Stage next) {
                return new ReplaceStage(next, this);
            }
        }

        record Strip(int content, int start, int stop) implements Step {
            @Override
            public Stage stage(Stage next) {
                return new StripStage(next, this);
            }

            /** One token stripped, as the Rust crate strips each token: start first, stop from the rest. */
            String stripToken(String token) {
                int[] chars = token.codePoints().toArray();
                int from = 0;
                while (from < Math.min(start, chars.length) && chars[from] == content) {
                    from++;
                }
                int to = chars.length;
                for (int i = 0; i < Math.min(stop, chars.length - from) && chars[to - 1] == content; i++) {
                    to--;
                }
                return new String(chars, from, to - from);
            }
        }

        /** {@code stripFirst}: the prepend_scheme is not "never". */
        record Metaspace(String replacement, boolean stripFirst) implements Step {
            @Override
            public Stage stage(Stage next) {
                return new MetaspaceStage(next, this);
            }
        }

        /**
         * WordPiece (BERT): every token but the first is a new word, so it gets a space before it, unless
         * it starts with {@code prefix} ({@code ##}), which is then dropped and joins the token to the one
         * before. With {@code cleanup}, each token so rendered goes through {@link #cleanup}.
         */
        record WordPiece(String prefix, boolean cleanup) implements Step {
            @Override
            public Stage stage(Stage next) {
                return new WordPieceStage(next, this);
            }

            String render(String token, boolean first) {
                String text = first ? token
                        : token.startsWith(prefix) ? token.substring(prefix.length()) : " " + token;
                return cleanup ? cleanup(text) : text;
            }

            /**
             * The Rust crate's (and BERT's original) cleanup of tokenization spaces, applied to one
             * rendered token at a time, in this order. Only the first four change tokens that encoding
             * produces (a lone {@code .}, {@code ?}, {@code !} or {@code ,} then joins the word before it);
             * the rest need a token holding an apostrophe beside letters, or a space, which BERT's
             * pre-tokenizer never makes but decoding hand-picked ids can meet.
             */
            static String cleanup(String text) {
                return text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
                        .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m")
                        .replace(" do not", " don't").replace(" 's", "'s").replace(" 've", "'ve")
                        .replace(" 're", "'re");
            }
        }

        /** No decoder: tokens joined with single spaces. */
        record JoinWithSpaces() implements Step {
            @Override
            public Stage stage(Stage next) {
                return new JoinStage(next);
            }
        }
    }

    /** A running decode: the stages of one stream, and the text they have let through. */
    static final class Stream {
        private final Sink sink = new Sink();
        private Stage first;

        void push(String token) {
            first.token(token);
        }

        /** Ends the text: every stage releases what it held. The stream takes no tokens after this. */
        void end() {
            first.end();
        }

        /** The text produced since the last call. */
        String take() {
            String text = sink.text.toString();
            sink.text.setLength(0);
            return text;
        }
    }

    /**
     * A step in a running stream. Before any fusing step a stage receives whole tokens ({@link #token});
     * after one, consecutive parts of the single joined token ({@link #chunk}).
     */
    private abstract static class Stage {
        final Stage next;

        Stage(Stage next) {
            this.next = next;
        }

        abstract void token(String token);

        void chunk(String part) {
            throw new IllegalStateException(getClass().getSimpleName() + " cannot follow a fusing step");
        }

        void end() {
            next.end();
        }
    }

    private static final class Sink extends Stage {
        final StringBuilder text = new StringBuilder();

        Sink() {
            super(null);
        }

        @Override
        void token(String token) {
            text.append(token);
        }

        @Override
        void chunk(String part) {
            text.append(part);
        }

        @Override
        void end() {}
    }

    /** Tokens to bytes, bytes to text; holds an unfinished UTF-8 sequence back. */
    private static final class ByteLevelStage extends Stage {
        private byte[] pending = new byte[16];
        private int length;

        ByteLevelStage(Stage next) {
            super(next);
        }

        @Override
        void token(String token) {
            byte[] bytes = ByteLevel.bytesOf(token);
            if (length + bytes.length > pending.length) {
                pending = Arrays.copyOf(pending, Math.max(pending.length * 2, length + bytes.length));
            }
            System.arraycopy(bytes, 0, pending, length, bytes.length);
            length += bytes.length;
            int complete = Utf8.completePrefixLength(pending, length);
            if (complete > 0) {
                next.chunk(new String(pending, 0, complete, StandardCharsets.UTF_8));
                System.arraycopy(pending, complete, pending, 0, length - complete);
                length -= complete;
            }
        }

        @Override
        void end() {
            if (length > 0) {
                // An unfinished sequence becomes U+FFFD, as String decoding replaces it.
                next.chunk(new String(pending, 0, length, StandardCharsets.UTF_8));
                length = 0;
            }
            next.end();
        }
    }

    /**
     * Runs of {@code <0xNN>} tokens become the text their bytes spell, as one token; a run that is not
     * valid UTF-8 becomes one U+FFFD token per byte (the Rust crate's rule). Other tokens pass.
     */
    private static final class ByteFallbackStage extends Stage {
        private byte[] run = new byte[8];
        private int length;
        private boolean invalid;

        ByteFallbackStage(Stage next) {
            super(next);
        }

        @Override
        void token(String token) {
            int value = byteTokenValue(token);
            if (value < 0) {
                endRun();
                next.token(token);
                return;
            }
            if (length == run.length) {
                run = Arrays.copyOf(run, length * 2);
            }
            run[length++] = (byte) value;
            if (invalid) {
                next.token(REPLACEMENT_CHARACTER);
            } else if (Utf8.isMalformedPrefix(run, length)) {
                // Whatever follows, the run is invalid: its bytes so far are released as U+FFFDs now.
                invalid = true;
                for (int i = 0; i < length; i++) {
                    next.token(REPLACEMENT_CHARACTER);
                }
            }
        }

        private void endRun() {
            if (length > 0 && !invalid) {
                String text = Utf8.decodeStrict(run, length);
                if (text != null) {
                    next.token(text);
                } else {
                    for (int i = 0; i < length; i++) {
                        next.token(REPLACEMENT_CHARACTER);
                    }
                }
            }
            length = 0;
            invalid = false;
        }

        @Override
        void end() {
            endRun();
            next.end();
        }
    }

    private static final class FuseStage extends Stage {
        FuseStage(Stage next) {
            super(next);
        }

        @Override
        void token(String token) {
            chunk(token);
        }

        @Override
        void chunk(String part) {
            if (!part.isEmpty()) {
                next.chunk(part);
            }
        }
    }

    private static final class JoinStage extends Stage {
        private boolean first = true;

        JoinStage(Stage next) {
            super(next);
        }

        @Override
        void token(String token) {
            next.chunk(first ? token : " " + token);
            first = false;
        }
    }

    private static final class ReplaceStage extends Stage {
        private final Step.Replace step;
        private final StringBuilder held = new StringBuilder();

        ReplaceStage(Stage next, Step.Replace step) {
            super(next);
            this.step = step;
        }

        @Override
        void token(String token) {
            next.token(step.pattern().replaceAll(token, step.content()));
        }

        @Override
        void chunk(String part) {
            held.append(part);
            String literal = step.pattern().literal();
            if (literal == null) {
                return; // a regex may match across parts: replace once the text is complete
            }
            int cut = safeCut(held, literal);
            if (cut > 0) {
                next.chunk(step.pattern().replaceAll(held.substring(0, cut), step.content()));
                held.delete(0, cut);
            }
        }

        /**
         * The end of the prefix of {@code text} whose replacement is final: past the last match, up to
         * the earliest position where the rest of the text could still begin a match of {@code literal}.
         */
        private int safeCut(CharSequence text, String literal) {
            int afterMatches = 0;
            Matcher m = step.pattern().regex().matcher(text);
            while (m.find()) {
                afterMatches = m.end();
            }
            for (int h = Math.max(afterMatches, text.length() - literal.length() + 1); h < text.length(); h++) {
                if (literal.startsWith(text.subSequence(h, text.length()).toString())) {
                    return h;
                }
            }
            return text.length();
        }

        @Override
        void end() {
            if (!held.isEmpty()) {
                next.chunk(step.pattern().replaceAll(held.toString(), step.content()));
                held.setLength(0);
            }
            next.end();
        }
    }

    /**
     * Removes up to {@code start} leading and {@code stop} trailing {@code content} characters: of each
     * token before a fusing step (as the Rust crate), of the whole text after one.
     */
    private static final class StripStage extends Stage {
        private final Step.Strip step;
        private int strippedAtStart;
        private boolean pastStart;
        /** Trailing content characters held back (at most {@code stop}). */
        private int heldAtEnd;

        StripStage(Stage next, Step.Strip step) {
            super(next);
            this.step = step;
        }

        @Override
        void token(String token) {
            next.token(step.stripToken(token));
        }

        @Override
        void chunk(String part) {
            StringBuilder out = new StringBuilder(part.length());
            part.codePoints().forEach(c -> {
                if (!pastStart && strippedAtStart < step.start() && c == step.content()) {
                    strippedAtStart++;
                    return;
                }
                pastStart = true;
                if (c == step.content() && step.stop() > 0) {
                    if (heldAtEnd == step.stop()) {
                        out.appendCodePoint(c); // one more than stop: the earliest is no longer strippable
                    } else {
                        heldAtEnd++;
                    }
                    return;
                }
                for (; heldAtEnd > 0; heldAtEnd--) {
                    out.appendCodePoint(step.content());
                }
                out.appendCodePoint(c);
            });
            if (!out.isEmpty()) {
                next.chunk(out.toString());
            }
        }

        @Override
        void end() {
            heldAtEnd = 0; // they were the last characters: stripped
            next.end();
        }
    }

    /** WordPiece: each token rendered on its own; only the first token of the text is treated differently. */
    private static final class WordPieceStage extends Stage {
        private final Step.WordPiece step;
        private boolean first = true;

        WordPieceStage(Stage next, Step.WordPiece step) {
            super(next);
            this.step = step;
        }

        @Override
        void token(String token) {
            next.token(step.render(token, first));
            first = false;
        }
    }

    /**
     * Metaspace: the replacement character (▁) becomes a space, and unless the prepend_scheme is "never"
     * the first token loses one leading space. That follows transformers.js, which produced the goldens;
     * the Rust crate drops every ▁ of the first token, which differs only for a first token holding
     * more than one.
     */
    private static final class MetaspaceStage extends Stage {
        private final Step.Metaspace step;
        private boolean first = true;

        MetaspaceStage(Stage next, Step.Metaspace step) {
            super(next);
            this.step = step;
        }

        @Override
        void token(String token) {
            next.token(replace(token));
            first = false;
        }

        @Override
        void chunk(String part) {
            if (part.isEmpty()) {
                return;
            }
            String text = replace(part);
            first = false;
            if (!text.isEmpty()) {
                next.chunk(text);
            }
        }

        private String replace(String token) {
            String text = token.replace(step.replacement(), " ");
            return first && step.stripFirst() && text.startsWith(" ") ? text.substring(1) : text;
        }
    }
}
