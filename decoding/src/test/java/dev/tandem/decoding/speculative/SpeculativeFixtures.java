package dev.tandem.decoding.speculative;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/** What the speculative-family tests share: bard-l's golden cases and the choice of an EOS token to plant. */
final class SpeculativeFixtures {
    private SpeculativeFixtures() {}

    static JsonNode golden() throws IOException {
        return new ObjectMapper().readTree(TestModels.model("bard-l").resolve("golden.json").toFile());
    }

    /** bard-l's golden prompts followed by {@code more}. */
    static List<String> goldenPromptsAnd(List<String> more) throws IOException {
        List<String> prompts = new ArrayList<>();
        for (JsonNode c : golden().get("cases")) {
            prompts.add(c.get("prompt").asText());
        }
        prompts.addAll(more);
        return prompts;
    }

    /**
     * The first index k ≥ 1 of {@code ids} that is the first occurrence of its token and not a bonus
     * token when rounds emit {@code period} tokens (period − 1 accepted drafts, then the target's own);
     * making that token the EOS ends the output inside an accepted draft. −1 if there is none.
     */
    static int tokenInsideAnAcceptedDraft(int[] ids, int period) {
        for (int k = 1; k < ids.length; k++) {
            if (k % period != period - 1 && firstIndexOf(ids, ids[k]) == k) {
                return k;
            }
        }
        return -1;
    }

    private static int firstIndexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }
}
