package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import dev.tandem.transformer.tokenizer.Tokenizer.EncoderInput;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The {@code post_processor} of {@code tokenizer.json}: wraps encoded ids in the special tokens the model
 * expects around its input (BOS first; {@code [CLS] A [SEP]} for BERT, {@code [CLS] A [SEP] B [SEP]} for
 * a pair of sequences) and gives each id its token type id, as the Rust crate does. Sequences arrive
 * with type id 0, the second of a pair with 1; TemplateProcessing sets them as its template says,
 * BertProcessing keeps them (its tokens around B get 1), RobertaProcessing sets all to 0.
 */
interface PostProcessor {

    /** The supported {@code type}s. */
    List<String> TYPES = List.of("TemplateProcessing", "ByteLevel", "BertProcessing", "RobertaProcessing", "Sequence");

    /** Adds nothing: the Rust crate's behaviour without a post-processor, and ByteLevel's (it only trims offsets). */
    PostProcessor NOTHING = new PostProcessor() {
        @Override
        public EncoderInput single(EncoderInput sequence) {
            return sequence;
        }

        @Override
        public EncoderInput pair(EncoderInput first, EncoderInput second) {
            return concat(first, second);
        }
    };

    /** One sequence wrapped. */
    EncoderInput single(EncoderInput sequence);

    /**
     * Two sequences wrapped into one input.
     *
     * @throws UnsupportedOperationException if this post-processor has no form for a pair
     */
    EncoderInput pair(EncoderInput first, EncoderInput second);

    /** Whether {@link #pair} is supported. */
    default boolean wrapsPairs() {
        return true;
    }

    /** The ids of one sequence, wrapped. */
    default int[] apply(int[] ids) {
        return single(new EncoderInput(ids, new int[ids.length])).ids();
    }

    /** The post-processor {@code node} describes; null or absent adds nothing. */
    static PostProcessor parse(JsonNode node, String path, TokenizerJson json) {
        if (TokenizerJson.absent(node)) {
            return NOTHING;
        }
        return switch (json.type(node, path, TYPES)) {
            case "ByteLevel" -> NOTHING;
            case "TemplateProcessing" -> Template.parse(node, path, json);
            case "BertProcessing" -> new Bert(idOfPair(node, "cls", path, json), idOfPair(node, "sep", path, json));
            case "RobertaProcessing" ->
                    new Roberta(idOfPair(node, "cls", path, json), idOfPair(node, "sep", path, json));
            case "Sequence" -> {
                JsonNode steps = json.array(node, "processors", path);
                List<PostProcessor> sequence = new ArrayList<>();
                for (int i = 0; i < steps.size(); i++) {
                    sequence.add(parse(steps.get(i), path + ".processors[" + i + "]", json));
                }
                yield new Sequence(List.copyOf(sequence));
            }
            default -> throw new AssertionError("type checked above");
        };
    }

    /** The id of a {@code ["[CLS]", 101]} field. */
    private static int idOfPair(JsonNode node, String field, String path, TokenizerJson json) {
        JsonNode pair = node.path(field);
        if (!pair.isArray() || pair.size() != 2 || !pair.get(0).isTextual() || !pair.get(1).canConvertToInt()
                || pair.get(1).intValue() < 0) {
            throw json.fail(path + "." + field + " is not a [token, id] pair");
        }
        return pair.get(1).intValue();
    }

    /** {@code ids} with type id {@code typeId} each. */
    private static EncoderInput typed(int[] ids, int typeId) {
        int[] types = new int[ids.length];
        Arrays.fill(types, typeId);
        return new EncoderInput(ids, types);
    }

    private static EncoderInput concat(EncoderInput... parts) {
        int length = 0;
        for (EncoderInput p : parts) {
            length += p.ids().length;
        }
        int[] ids = new int[length];
        int[] types = new int[length];
        int at = 0;
        for (EncoderInput p : parts) {
            System.arraycopy(p.ids(), 0, ids, at, p.ids().length);
            System.arraycopy(p.typeIds(), 0, types, at, p.ids().length);
            at += p.ids().length;
        }
        return new EncoderInput(ids, types);
    }

    /** BERT's: {@code [CLS] A [SEP]} and {@code [CLS] A [SEP] B [SEP]}, B's tokens of type 1. */
    record Bert(int cls, int sep) implements PostProcessor {
        @Override
        public EncoderInput single(EncoderInput a) {
            return concat(typed(new int[] {cls}, 0), a, typed(new int[] {sep}, 0));
        }

        @Override
        public EncoderInput pair(EncoderInput a, EncoderInput b) {
            return concat(single(a), b, typed(new int[] {sep}, 1));
        }
    }

    /** RoBERTa's: {@code <s> A </s>} and {@code <s> A </s></s> B </s>}, every type id 0. */
    record Roberta(int cls, int sep) implements PostProcessor {
        @Override
        public EncoderInput single(EncoderInput a) {
            return typed(concat(typed(new int[] {cls}, 0), a, typed(new int[] {sep}, 0)).ids(), 0);
        }

        @Override
        public EncoderInput pair(EncoderInput a, EncoderInput b) {
            return typed(concat(single(a), typed(new int[] {sep}, 0), b, typed(new int[] {sep}, 0)).ids(), 0);
        }
    }

    /**
     * Each processor in turn. The Rust crate hands a pair on as two sequences until the end; here a
     * pair is wrapped by the one step that adds tokens (ByteLevel steps add none), and a sequence with
     * two such steps has no pair form.
     */
    record Sequence(List<PostProcessor> steps) implements PostProcessor {
        @Override
        public EncoderInput single(EncoderInput sequence) {
            for (PostProcessor step : steps) {
                sequence = step.single(sequence);
            }
            return sequence;
        }

        @Override
        public EncoderInput pair(EncoderInput first, EncoderInput second) {
            if (!wrapsPairs()) {
                throw new UnsupportedOperationException(
                        "a Sequence post-processor with more than one step that adds tokens cannot wrap a pair");
            }
            return wrapping().stream().findFirst().orElse(NOTHING).pair(first, second);
        }

        @Override
        public boolean wrapsPairs() {
            List<PostProcessor> wrapping = wrapping();
            return wrapping.size() <= 1 && wrapping.stream().allMatch(PostProcessor::wrapsPairs);
        }

        private List<PostProcessor> wrapping() {
            return steps.stream().filter(step -> step != NOTHING).toList();
        }
    }

    /**
     * TemplateProcessing: the {@code single} template, and the {@code pair} one where the file has it
     * (not empty). A template is a list of pieces: {@code {"SpecialToken": {"id": name, "type_id": t}}}
     * inserts the ids that {@code special_tokens} lists under that name, {@code {"Sequence": {"id": "A",
     * "type_id": t}}} the ids of sequence A (or B), each with type id t.
     */
    record Template(List<Piece> singleTemplate, List<Piece> pairTemplate) implements PostProcessor {

        /** A special token's ids (sequence null), or a sequence ("A" or "B"), with the type id for them. */
        record Piece(int[] ids, String sequence, int typeId) {}

        static Template parse(JsonNode node, String path, TokenizerJson json) {
            if (!node.path("single").isArray()) {
                throw json.fail(path + ".single is missing or not an array");
            }
            List<Piece> single = pieces(node, "single", path, json);
            for (int i = 0; i < single.size(); i++) {
                if ("B".equals(single.get(i).sequence())) {
                    throw json.fail(path + ".single[" + i + "].Sequence.id is \"B\", but a single template can only"
                            + " hold A");
                }
            }
            List<Piece> pair = TokenizerJson.absent(node.path("pair")) ? List.of() : pieces(node, "pair", path, json);
            if (!pair.isEmpty() && !(pair.stream().anyMatch(p -> "A".equals(p.sequence()))
                    && pair.stream().anyMatch(p -> "B".equals(p.sequence())))) {
                throw json.fail(path + ".pair does not use both sequences A and B");
            }
            return new Template(single, pair);
        }

        private static List<Piece> pieces(JsonNode node, String field, String path, TokenizerJson json) {
            JsonNode template = json.array(node, field, path);
            JsonNode specials = node.path("special_tokens");
            List<Piece> pieces = new ArrayList<>();
            for (int i = 0; i < template.size(); i++) {
                JsonNode piece = template.get(i);
                String at = path + "." + field + "[" + i + "]";
                if (piece.has("Sequence")) {
                    String id = piece.path("Sequence").path("id").asText("");
                    if (!id.equals("A") && !id.equals("B")) {
                        throw json.fail(at + ".Sequence.id is \"" + id + "\", not A or B");
                    }
                    pieces.add(new Piece(null, id, json.nonNegativeInt(piece.path("Sequence"), "type_id", 0,
                            at + ".Sequence")));
                } else if (piece.has("SpecialToken")) {
                    String name = json.text(piece.path("SpecialToken"), "id", at + ".SpecialToken");
                    JsonNode ids = specials.path(name).path("ids");
                    if (!ids.isArray()) {
                        throw json.fail(path + ".special_tokens has no entry \"" + name + "\" with ids, which " + at
                                + " uses");
                    }
                    int[] values = new int[ids.size()];
                    for (int k = 0; k < values.length; k++) {
                        if (!ids.get(k).canConvertToInt() || ids.get(k).intValue() < 0) {
                            throw json.fail(path + ".special_tokens \"" + name + "\" has an id that is not a"
                                    + " non-negative integer");
                        }
                        values[k] = ids.get(k).intValue();
                    }
                    pieces.add(new Piece(values, null, json.nonNegativeInt(piece.path("SpecialToken"), "type_id", 0,
                            at + ".SpecialToken")));
                } else {
                    throw json.fail(at + " is neither a SpecialToken nor a Sequence piece");
                }
            }
            return pieces;
        }

        @Override
        public EncoderInput single(EncoderInput a) {
            return fill(singleTemplate, a, null);
        }

        @Override
        public EncoderInput pair(EncoderInput a, EncoderInput b) {
            if (pairTemplate.isEmpty()) {
                throw new UnsupportedOperationException("the TemplateProcessing post-processor has no pair template");
            }
            return fill(pairTemplate, a, b);
        }

        @Override
        public boolean wrapsPairs() {
            return !pairTemplate.isEmpty();
        }

        private static EncoderInput fill(List<Piece> template, EncoderInput a, EncoderInput b) {
            return concat(template.stream()
                    .map(p -> typed(p.sequence() == null ? p.ids() : p.sequence().equals("A") ? a.ids() : b.ids(),
                            p.typeId()))
                    .toArray(EncoderInput[]::new));
        }
    }
}
