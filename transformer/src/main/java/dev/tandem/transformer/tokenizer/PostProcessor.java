package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;

/**
 * The {@code post_processor} of {@code tokenizer.json}, for a single sequence: wraps encoded ids in the
 * special tokens the model expects around its input (e.g. BOS first).
 */
@FunctionalInterface
interface PostProcessor {

    /** The supported {@code type}s. */
    List<String> TYPES = List.of("TemplateProcessing", "ByteLevel", "BertProcessing", "RobertaProcessing", "Sequence");

    int[] apply(int[] ids);

    /** The post-processor {@code node} describes; null or absent adds nothing. */
    static PostProcessor parse(JsonNode node, String path, TokenizerJson json) {
        if (TokenizerJson.absent(node)) {
            return ids -> ids;
        }
        return switch (json.type(node, path, TYPES)) {
            // ByteLevel only trims offsets, which Tandem does not report.
            case "ByteLevel" -> ids -> ids;
            case "TemplateProcessing" -> template(node, path, json);
            // Both wrap one sequence as [CLS] A [SEP] (RoBERTa's are <s> and </s>).
            case "BertProcessing", "RobertaProcessing" -> {
                int cls = idOfPair(node, "cls", path, json);
                int sep = idOfPair(node, "sep", path, json);
                yield ids -> concat(new int[] {cls}, ids, new int[] {sep});
            }
            case "Sequence" -> {
                JsonNode steps = json.array(node, "processors", path);
                List<PostProcessor> sequence = new ArrayList<>();
                for (int i = 0; i < steps.size(); i++) {
                    sequence.add(parse(steps.get(i), path + ".processors[" + i + "]", json));
                }
                yield ids -> {
                    for (PostProcessor p : sequence) {
                        ids = p.apply(ids);
                    }
                    return ids;
                };
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

    /**
     * TemplateProcessing's {@code single} template: {@code {"SpecialToken": {"id": name}}} pieces insert
     * the ids that {@code special_tokens} lists under that name, and the {@code {"Sequence": {"id": "A"}}}
     * piece inserts the encoded ids.
     */
    private static PostProcessor template(JsonNode node, String path, TokenizerJson json) {
        JsonNode single = node.path("single");
        if (!single.isArray()) {
            throw json.fail(path + ".single is missing or not an array");
        }
        JsonNode specials = node.path("special_tokens");
        List<int[]> parts = new ArrayList<>(); // null stands for the sequence
        for (int i = 0; i < single.size(); i++) {
            JsonNode piece = single.get(i);
            String at = path + ".single[" + i + "]";
            if (piece.has("Sequence")) {
                String id = piece.path("Sequence").path("id").asText("");
                if (!id.equals("A")) {
                    throw json.fail(at + ".Sequence.id is \"" + id + "\", but a single template can only hold A");
                }
                parts.add(null);
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
                parts.add(values);
            } else {
                throw json.fail(at + " is neither a SpecialToken nor a Sequence piece");
            }
        }
        return ids -> concat(parts.stream().map(p -> p == null ? ids : p).toArray(int[][]::new));
    }

    private static int[] concat(int[]... parts) {
        int length = 0;
        for (int[] p : parts) {
            length += p.length;
        }
        int[] out = new int[length];
        int at = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }
}
