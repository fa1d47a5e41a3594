package dev.tandem.decoding.beam;

import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.Hypothesis;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Beam search against greedy decoding (B = 1) and against Hugging Face's rules written out plainly (every
 * hypothesis recomputed from scratch); diverse beam search's groups; one sentence for each bad parameter.
 */
class BeamSearchTest {
    static final int NEWLINE = 10;  // "\n" in the bard tokenizer: an EOS id that ends hypotheses early
    static final int COMMA = 44;
    static final String[] PROMPTS = {"ROMEO:", "First Citizen:\nBefore we proceed", "KING HENRY VI:\nWhat", "O",
            "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?"};

    static LanguageModel small;
    static LanguageModel large;

    @BeforeAll
    static void load() {
        small = ModelLoader.load(TestModels.model("bard-s"));
        large = ModelLoader.load(TestModels.model("bard-l"));
    }

    @AfterAll
    static void close() {
        small.close();
        large.close();
    }

    /** Everything plain decoding reports but the timings. */
    static void assertSameOutput(GenerationResult expected, GenerationResult actual, String what) {
        assertArrayEquals(expected.promptIds(), actual.promptIds(), what);
        assertArrayEquals(expected.generatedIds(), actual.generatedIds(), what);
        assertEquals(expected.text(), actual.text(), what);
        assertEquals(expected.finishReason(), actual.finishReason(), what);
        assertEquals(expected.usage(), actual.usage(), what);
        assertEquals(expected.logprobs(), actual.logprobs(), what + " (token events, log-probabilities bit for bit)");
    }

    @Test
    void oneBeamIsGreedyTokenForToken() {
        for (LanguageModel model : List.of(small, large)) {
            Generator greedy = new Generator(model);
            BeamSearch beam = new BeamSearch(model, BeamParams.beam(1));
            for (int i = 0; i < PROMPTS.length; i++) {
                GenerationRequest base = GenerationRequest.of(PROMPTS[i]).withMaxTokens(24);
                List<GenerationRequest> requests = List.of(base, base.withLogprobs(1 + i % 3),
                        base.withEosTokenIds(List.of(NEWLINE)), base.withStop(List.of("e", "\n\n")),
                        base.withMaxTokens(1));
                for (GenerationRequest r : requests) {
                    GenerationResult expected = greedy.generate(r);
                    GenerationResult actual = beam.generate(r);
                    String what = model.directory().getFileName() + " " + PROMPTS[i] + " " + r;
                    assertSameOutput(expected, actual, what);
                    assertEquals(1, actual.hypotheses().size(), what);
                    Hypothesis h = actual.hypotheses().getFirst();
                    assertArrayEquals(actual.generatedIds(), h.generatedIds(), what);
                    assertEquals(actual.text(), h.text(), what);
                    assertEquals(actual.finishReason(), h.finishReason(), what);
                    assertEquals("beam", actual.decodeStats().method(), what);
                    assertEquals(1 + actual.stats().decodeSteps(), actual.decodeStats().targetForwardPasses(), what);
                }
            }
        }
    }

    @Test
    void nBestEqualsAPlainlyWrittenBeamSearch() {
        for (int b = 2; b <= 4; b++) {
            for (String prompt : List.of(PROMPTS[0], PROMPTS[2], PROMPTS[3])) {
                for (List<Integer> eos : List.of(List.of(NEWLINE), List.of(NEWLINE, COMMA), List.<Integer>of())) {
                    double lengthPenalty = b == 3 ? -0.5 : 1.7;
                    BeamParams p = BeamParams.beam(b).withLengthPenalty(lengthPenalty).withNBest(b);
                    GenerationRequest r = GenerationRequest.of(prompt).withMaxTokens(10).withEosTokenIds(eos);
                    assertMatchesReference(p, r, "B=" + b + " " + prompt + " eos " + eos);
                }
            }
        }
        BeamParams p = BeamParams.beam(3).withNBest(3).withLengthPenalty(0.8);
        assertMatchesReference(p, GenerationRequest.of(PROMPTS[1]).withMaxTokens(9).withStop(List.of("e")), "stop string");
        assertMatchesReference(p, GenerationRequest.of(PROMPTS[4]).withMaxTokens(9)
                .withSampling(SamplingParams.greedy().withRepetitionPenalty(1.3f)), "repetition penalty");
    }

    @Test
    void diverseBeamEqualsAPlainlyWrittenGroupBeamSearch() {
        for (int[] bg : new int[][] {{4, 2}, {4, 4}, {6, 3}}) {
            for (List<Integer> eos : List.of(List.of(NEWLINE), List.<Integer>of())) {
                BeamParams p = BeamParams.diverse(bg[0], bg[1]).withNBest(bg[0]).withLengthPenalty(1.2);
                GenerationRequest r = GenerationRequest.of(PROMPTS[0]).withMaxTokens(8).withEosTokenIds(eos);
                assertMatchesReference(p, r, "B=" + bg[0] + " G=" + bg[1] + " eos " + eos);
            }
        }
    }

    @Test
    void diverseBeamReturnsDistinctGroups() {
        for (int groups : new int[] {2, 4}) {
            BeamParams p = BeamParams.diverse(4, groups).withDiversity(2.0).withNBest(4);
            GenerationResult r = new BeamSearch(small, p).generate(GenerationRequest.of(PROMPTS[1]).withMaxTokens(12));
            assertEquals("diverse-beam", r.decodeStats().method());
            List<Hypothesis> hs = r.hypotheses();
            assertEquals(4, hs.size());
            Set<Integer> seenGroups = new HashSet<>();
            Set<String> bestOfGroup = new HashSet<>();
            for (Hypothesis h : hs) {
                if (seenGroups.add(h.group())) {
                    bestOfGroup.add(Arrays.toString(h.generatedIds()));
                }
            }
            assertEquals(groups, seenGroups.size(), "every group has a hypothesis among the n-best: " + seenGroups);
            assertEquals(groups, bestOfGroup.size(), "the groups' hypotheses differ");
            for (int i = 1; i < hs.size(); i++) {
                assertTrue(hs.get(i - 1).score() >= hs.get(i).score(), "best first");
            }
        }
        // Without diversity the groups repeat each other; with it they do not.
        GenerationRequest r = GenerationRequest.of(PROMPTS[0]).withMaxTokens(10);
        List<Hypothesis> same = new BeamSearch(small, BeamParams.diverse(2, 2).withDiversity(0).withNBest(2)).generate(r).hypotheses();
        assertArrayEquals(same.get(0).generatedIds(), same.get(1).generatedIds());
        List<Hypothesis> diverse = new BeamSearch(small, BeamParams.diverse(2, 2).withNBest(2)).generate(r).hypotheses();
        assertNotEquals(Arrays.toString(diverse.get(0).generatedIds()), Arrays.toString(diverse.get(1).generatedIds()));
    }

    @Test
    void oneGroupIsPlainBeamSearch() {
        GenerationRequest r = GenerationRequest.of(PROMPTS[2]).withMaxTokens(12).withEosTokenIds(List.of(NEWLINE));
        GenerationResult plain = new BeamSearch(small, BeamParams.beam(4).withNBest(4)).generate(r);
        GenerationResult oneGroup = new BeamSearch(small, new BeamParams(4, 1, 0.7, 1.0, 4)).generate(r);
        assertSameOutput(plain, oneGroup, "G = 1");
        assertEquals(plain.hypotheses().size(), oneGroup.hypotheses().size());
        for (int i = 0; i < plain.hypotheses().size(); i++) {
            assertArrayEquals(plain.hypotheses().get(i).generatedIds(), oneGroup.hypotheses().get(i).generatedIds());
            assertEquals(plain.hypotheses().get(i).score(), oneGroup.hypotheses().get(i).score());
        }
        assertEquals("beam", oneGroup.decodeStats().method());
    }

    @Test
    void badInputGetsOneSentence() {
        assertMessage("--beams must be at least 1, but was 0.", () -> BeamParams.beam(0));
        assertMessage("--groups must be at least 1, but was 0.", () -> new BeamParams(4, 0, 0.5, 1, 1));
        assertMessage("--groups 3 does not divide --beams 4.", () -> BeamParams.diverse(4, 3));
        assertMessage("--diversity must be a finite number >= 0, but was -0.5.", () -> BeamParams.diverse(4, 2).withDiversity(-0.5));
        assertMessage("--diversity must be a finite number >= 0, but was NaN.", () -> BeamParams.diverse(4, 2).withDiversity(Double.NaN));
        assertMessage("--length-penalty must be a finite number, but was Infinity.",
                () -> BeamParams.beam(2).withLengthPenalty(Double.POSITIVE_INFINITY));
        assertMessage("--n-best must be between 1 and --beams 2, but was 3.", () -> BeamParams.beam(2).withNBest(3));
        assertMessage("--n-best must be between 1 and --beams 2, but was 0.", () -> BeamParams.beam(2).withNBest(0));
        BeamSearch beam = new BeamSearch(small, BeamParams.beam(2));
        assertMessage("--method beam is deterministic, so it takes no --temperature, but it was 0.7.",
                () -> beam.task(GenerationRequest.of("O").withSampling(SamplingParams.greedy().withTemperature(0.7f))));
    }

    static void assertMessage(String expected, Runnable bad) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, bad::run);
        assertEquals(expected, e.getMessage());
    }

    // ---------------------------------------------------------------- the reference

    /** A finished hypothesis of the reference. */
    record Ref(List<Integer> ids, double score, double logprob, int group) {
    }

    /** A live hypothesis of the reference. */
    record Live(List<Integer> ids, double score, double logprob) {
    }

    record Candidate(Live from, int token, double score, double logprob) {
    }

    static void assertMatchesReference(BeamParams p, GenerationRequest r, String what) {
        GenerationResult actual = new BeamSearch(small, p).generate(r);
        List<Ref> expected = reference(p, r);
        List<Hypothesis> hs = actual.hypotheses();
        assertEquals(expected.size(), hs.size(), what);
        for (int i = 0; i < hs.size(); i++) {
            Ref e = expected.get(i);
            Hypothesis h = hs.get(i);
            String at = what + ", hypothesis " + i;
            assertArrayEquals(e.ids().stream().mapToInt(Integer::intValue).toArray(), h.generatedIds(), at);
            assertEquals(e.score(), h.score(), 1e-5, at);
            assertEquals(e.logprob(), h.logprob(), 1e-5, at);
            assertEquals(e.group(), h.group(), at);
        }
        assertArrayEquals(hs.getFirst().generatedIds(), actual.generatedIds(), what + ": the result is the best hypothesis");
    }

    /**
     * Hugging Face's beam search written out plainly, each group after the other: every hypothesis's logits
     * from a fresh sequence, all (hypothesis, token) candidates sorted, the rules of {@link BeamSearch}'s comment.
     */
    static List<Ref> reference(BeamParams p, GenerationRequest r) {
        int[] prompt = new Generator(small).promptIds(r);
        List<Integer> eos = r.eosTokenIds() != null ? r.eosTokenIds() : small.config().eosTokenIds();
        int size = p.groupSize();
        int k = Math.max(2, 1 + eos.size()) * size;
        List<List<Live>> running = new ArrayList<>();
        List<List<Ref>> done = new ArrayList<>();
        for (int g = 0; g < p.groups(); g++) {
            running.add(List.of(new Live(List.of(), 0, 0)));
            done.add(new ArrayList<>());
        }
        for (int length = 1; running.stream().anyMatch(l -> !l.isEmpty()); length++) {
            double norm = Math.pow(length, p.lengthPenalty());
            List<Integer> chosen = new ArrayList<>();
            for (int g = 0; g < p.groups(); g++) {
                List<Candidate> candidates = new ArrayList<>();
                for (Live h : running.get(g)) {
                    int[] context = context(prompt, h.ids());
                    float[] logits = freshLogits(context);
                    double max = Double.NEGATIVE_INFINITY;
                    for (float l : logits) {
                        max = Math.max(max, l);
                    }
                    double sum = 0;
                    for (float l : logits) {
                        sum += Math.exp(l - max);
                    }
                    double logZ = max + Math.log(sum);
                    Set<Integer> seen = new HashSet<>();
                    for (int id : context) {
                        seen.add(id);
                    }
                    for (int t = 0; t < logits.length; t++) {
                        double logprob = logits[t] - logZ;
                        double s = logprob;
                        if (seen.contains(t)) {
                            s *= r.sampling().repetitionPenalty();
                        }
                        for (int c : chosen) {
                            if (c == t) {
                                s -= p.diversity();
                            }
                        }
                        candidates.add(new Candidate(h, t, h.score() + s, (float) logprob));
                    }
                }
                candidates.sort(Comparator.comparingDouble(Candidate::score).reversed()); // stable: earlier beam, lower id
                List<Live> kept = new ArrayList<>();
                List<Ref> finished = done.get(g);
                for (int rank = 0; rank < Math.min(k, candidates.size()); rank++) {
                    Candidate c = candidates.get(rank);
                    List<Integer> ids = new ArrayList<>(c.from().ids());
                    ids.add(c.token());
                    String text = small.tokenizer().decode(ids.stream().mapToInt(Integer::intValue).toArray());
                    boolean stops = eos.contains(c.token()) || ids.size() >= r.maxTokens()
                            || r.stop().stream().anyMatch(text::contains);
                    double logprob = c.from().logprob() + c.logprob();
                    if (stops && rank < size) {
                        finished.add(new Ref(ids, c.score() / norm, logprob, g));
                        finished.sort(Comparator.comparingDouble(Ref::score).reversed());
                        if (finished.size() > size) {
                            finished.removeLast();
                        }
                    } else if (!stops && kept.size() < size) {
                        kept.add(new Live(ids, c.score(), logprob));
                    }
                }
                kept.forEach(h -> chosen.add(h.ids().getLast()));
                if (finished.size() == size && !kept.isEmpty() && kept.getFirst().score() / norm <= finished.getLast().score()) {
                    kept.clear();
                }
                running.set(g, kept);
            }
        }
        List<Ref> all = new ArrayList<>();
        done.forEach(all::addAll);
        all.sort(Comparator.comparingDouble(Ref::score).reversed());
        return all.subList(0, Math.min(p.nBest(), all.size()));
    }

    static int[] context(int[] prompt, List<Integer> ids) {
        int[] context = Arrays.copyOf(prompt, prompt.length + ids.size());
        for (int i = 0; i < ids.size(); i++) {
            context[prompt.length + i] = ids.get(i);
        }
        return context;
    }

    /** The logits after {@code context}, from a fresh sequence prefilled with all of it. */
    static float[] freshLogits(int[] context) {
        try (KvSequence seq = small.newSequence()) {
            return small.forward(Batch.of(Batch.Entry.continuation(seq, context))).lastLogits(0);
        }
    }

    @Test
    void finishReasonsFollowPlainDecoding() {
        BeamSearch beam = new BeamSearch(small, BeamParams.beam(3).withNBest(3));
        GenerationResult byEos = beam.generate(GenerationRequest.of(PROMPTS[0]).withMaxTokens(30).withEosTokenIds(List.of(NEWLINE)));
        assertEquals(FinishReason.EOS, byEos.finishReason());
        assertEquals(NEWLINE, byEos.generatedIds()[byEos.generatedIds().length - 1]);
        int[] beforeEos = Arrays.copyOf(byEos.generatedIds(), byEos.generatedIds().length - 1);
        assertEquals(small.tokenizer().decode(beforeEos), byEos.text(), "the EOS token's text is not in the text");
        GenerationResult byLength = beam.generate(GenerationRequest.of(PROMPTS[0]).withMaxTokens(5).withEosTokenIds(List.of()));
        assertEquals(FinishReason.MAX_TOKENS, byLength.finishReason());
        assertEquals(5, byLength.generatedIds().length);
        GenerationResult byStop = beam.generate(GenerationRequest.of(PROMPTS[1]).withMaxTokens(30).withStop(List.of("\n\n")));
        assertEquals(FinishReason.STOP_STRING, byStop.finishReason(), byStop.hypotheses().stream()
                .map(h -> h.finishReason() + " " + h.score() + " " + h.text().replace("\n", "|")).toList().toString());
        assertTrue(!byStop.text().contains("\n\n"), "cut before the stop string: " + byStop.text());
        for (Hypothesis h : byStop.hypotheses()) {
            if (h.finishReason() == FinishReason.STOP_STRING) {
                assertEquals(small.tokenizer().decode(h.generatedIds()).indexOf("\n\n"), h.text().length(), "each hypothesis cut there too");
            }
        }
    }
}
