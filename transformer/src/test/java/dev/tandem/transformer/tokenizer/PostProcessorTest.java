package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Each supported post-processor, as {@link Tokenizer#withSpecialTokens} applies it to one sequence and
 * {@link Tokenizer#encoderInput} to one or a pair, with type ids as the Rust crate gives them.
 */
class PostProcessorTest {
    /** Ids 0..5: [CLS], [SEP], <s>, </s>, x, y. */
    private static final List<String> VOCAB = List.of("[CLS]", "[SEP]", "<s>", "</s>", "x", "y");

    @TempDir
    Path tmp;

    private Tokenizer withPostProcessor(String postProcessor) {
        return HandWrittenTokenizers.load(tmp, VOCAB, "{\"post_processor\": " + postProcessor + "}");
    }

    @Test
    void templateInsertsEachSpecialTokensIdsAroundTheSequence() {
        Tokenizer t = withPostProcessor("""
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                            {"SpecialToken": {"id": "pair", "type_id": 0}}],
                 "pair": [],
                 "special_tokens": {"<s>": {"id": "<s>", "ids": [2], "tokens": ["<s>"]},
                                    "pair": {"id": "pair", "ids": [3, 1], "tokens": ["</s>", "[SEP]"]}}}""");
        assertArrayEquals(new int[] {2, 4, 5, 3, 1}, t.withSpecialTokens(new int[] {4, 5}));
        assertTrue(t.addsSpecialTokens());
    }

    @Test
    void bertAndRobertaWrapTheSequenceInClsAndSep() {
        Tokenizer bert = withPostProcessor("{\"type\": \"BertProcessing\", \"sep\": [\"[SEP]\", 1], \"cls\": [\"[CLS]\", 0]}");
        assertArrayEquals(new int[] {0, 4, 1}, bert.withSpecialTokens(new int[] {4}));
        Tokenizer roberta = withPostProcessor("""
                {"type": "RobertaProcessing", "sep": ["</s>", 3], "cls": ["<s>", 2],
                 "trim_offsets": true, "add_prefix_space": true}""");
        assertArrayEquals(new int[] {2, 4, 5, 3}, roberta.withSpecialTokens(new int[] {4, 5}));
    }

    @Test
    void sequenceAppliesEachProcessorInTurn() {
        // The official Llama 3 file: ByteLevel (nothing to add) then a template with BOS.
        Tokenizer t = withPostProcessor("""
                {"type": "Sequence", "processors": [
                  {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
                  {"type": "TemplateProcessing",
                   "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                   "special_tokens": {"<s>": {"id": "<s>", "ids": [2], "tokens": ["<s>"]}}}]}""");
        assertArrayEquals(new int[] {2, 4}, t.withSpecialTokens(new int[] {4}));
    }

    @Test
    void templatePairFormWrapsBothSequencesWithTheTemplatesTypeIds() {
        // all-MiniLM-L6-v2's template.
        Tokenizer t = withPostProcessor("""
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                            {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                 "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                          {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                 "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [0], "tokens": ["[CLS]"]},
                                    "[SEP]": {"id": "[SEP]", "ids": [1], "tokens": ["[SEP]"]}}}""");
        assertInput(new int[] {0, 4, 1}, new int[] {0, 0, 0}, t.encoderInput(new int[] {4}));
        assertInput(new int[] {0, 4, 1, 5, 5, 1}, new int[] {0, 0, 0, 1, 1, 1},
                t.encoderInput(new int[] {4}, new int[] {5, 5}));
    }

    @Test
    void bertAndRobertaPairForms() {
        Tokenizer bert = withPostProcessor("{\"type\": \"BertProcessing\", \"sep\": [\"[SEP]\", 1], \"cls\": [\"[CLS]\", 0]}");
        assertInput(new int[] {0, 4, 1, 5, 1}, new int[] {0, 0, 0, 1, 1}, bert.encoderInput(new int[] {4}, new int[] {5}));
        Tokenizer roberta = withPostProcessor("{\"type\": \"RobertaProcessing\", \"sep\": [\"</s>\", 3], \"cls\": [\"<s>\", 2]}");
        assertInput(new int[] {2, 4, 3, 3, 5, 3}, new int[6], roberta.encoderInput(new int[] {4}, new int[] {5}));
    }

    @Test
    void withoutAPostProcessorAPairIsConcatenatedWithTheSecondOfTypeOne() {
        Tokenizer t = HandWrittenTokenizers.load(tmp, VOCAB, "{}");
        assertInput(new int[] {4, 5, 5}, new int[] {0, 1, 1}, t.encoderInput(new int[] {4}, new int[] {5, 5}));
        assertInput(new int[] {4}, new int[] {0}, t.encoderInput(new int[] {4}));
    }

    @Test
    void aTemplateWithoutAPairFormCannotWrapAPair() {
        Tokenizer t = withPostProcessor("""
                {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
                 "special_tokens": {}}""");
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                () -> t.encoderInput(new int[] {4}, new int[] {5}));
        assertEquals("the TemplateProcessing post-processor has no pair template", e.getMessage());
    }

    private static void assertInput(int[] ids, int[] typeIds, Tokenizer.EncoderInput input) {
        assertArrayEquals(ids, input.ids(), "ids");
        assertArrayEquals(typeIds, input.typeIds(), "type ids");
    }

    @Test
    void withoutAPostProcessorTheIdsAreReturnedUnchangedInANewArray() {
        Tokenizer t = HandWrittenTokenizers.load(tmp, VOCAB, "{}");
        int[] ids = {4, 5};
        int[] wrapped = t.withSpecialTokens(ids);
        assertArrayEquals(ids, wrapped);
        wrapped[0] = 0;
        assertArrayEquals(new int[] {4, 5}, ids);
        assertFalse(t.addsSpecialTokens());
    }
}
