package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.Tasks;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 17's acceptance for RAPID ({@link RapidDecoding}) on the bundled models: bard-l is the target and reads a long
 * context of five Shakespeare passages and the question; the drafter (bard-s, or bard-l itself) reads one passage
 * and the question. Greedy RAPID is greedy decoding of the target on the whole context; with η = 0 and the drafter
 * reading the target's prompt it is speculative decoding token for token; with η = 0 and a short drafter prompt it
 * still samples the target's distribution; the Engine batches it; bad input is one sentence.
 */
class RapidDecodingTest {
    static final List<String> PASSAGES = List.of("""
            KING RICHARD III:
            Now is the winter of our discontent
            Made glorious summer by this sun of York;
            And all the clouds that lour'd upon our house
            In the deep bosom of the ocean buried.
            """, """
            JULIET:
            O Romeo, Romeo! wherefore art thou Romeo?
            Deny thy father and refuse thy name;
            Or, if thou wilt not, be but sworn my love,
            And I'll no longer be a Capulet.
            """, """
            MENENIUS:
            Either you must
            Confess yourselves wondrous malicious,
            Or be accused of folly.
            """, """
            First Citizen:
            Before we proceed any further, hear me speak.

            All:
            Speak, speak.

            First Citizen:
            You are all resolved rather to die than to famish?
            """, """
            HAMLET:
            To be, or not to be, that is the question:
            Whether 'tis nobler in the mind to suffer
            The slings and arrows of outrageous fortune,
            Or to take arms against a sea of troubles
            """);
    static final List<String> QUESTIONS = List.of("\nROMEO:\n", "\nKING RICHARD III:\nAnd");
    static final String CONTEXT = String.join("\n", PASSAGES);

    static LanguageModel target;
    static LanguageModel medium;
    static LanguageModel small;

    @BeforeAll
    static void load() throws Exception {
        target = ModelLoader.load(TestModels.model("bard-l"));
        medium = ModelLoader.load(TestModels.model("bard-m"), ModelLoader.Options.defaults().withBackend(target.backend()));
        small = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(target.backend()));
    }

    @AfterAll
    static void close() {
        small.close();
        medium.close();
        target.close();
    }

    /** The target's request: the whole context, then the question. */
    static GenerationRequest request(String question) {
        return GenerationRequest.of(CONTEXT + question).withMaxTokens(32);
    }

    /** The drafter's prompt: passage {@code passage} alone, then the question, encoded as a prompt. */
    static int[] drafterPrompt(int passage, String question) {
        return new Generator(small).promptIds(GenerationRequest.of(PASSAGES.get(passage) + question));
    }

    static int[] targetPrompt(GenerationRequest request) {
        return new Generator(target).promptIds(request);
    }

    @Test
    void greedyRapidIsGreedyDecodingOfTheTargetOnTheWholeContext() {
        for (String question : QUESTIONS) {
            GenerationRequest r = request(question);
            int[] drafterPrompt = drafterPrompt(1, question);
            assertTrue(drafterPrompt.length * 4 < targetPrompt(r).length, "the drafter reads a small part of the context");
            GenerationResult plain = new Generator(target).generate(r);
            for (int gamma : new int[] {1, 3, 5}) {
                // η does not enter greedy verification: a large one changes nothing.
                for (LanguageModel drafter : List.of(small, target)) {
                    String where = "γ = " + gamma + ", drafter " + drafter.directory().getFileName() + ", \"" + question + "\"";
                    GenerationResult rapid = new RapidDecoding(target, drafter, gamma, 20).generate(r, drafterPrompt);
                    SpeculativeFixtures.assertSameOutputAsPlain(plain, rapid, where);
                    assertEquals("rapid", rapid.decodeStats().method(), where);
                    assertTrue(rapid.decodeStats().verifications() > 0 && rapid.decodeStats().draftedTokens() > 0, where);
                }
            }
        }
    }

    @Test
    void atEtaZeroWithTheTargetsPromptRapidIsSpeculativeDecodingTokenForToken() {
        SamplingParams[] samplings = {SamplingParams.greedy().withTemperature(1f), SamplingParams.greedy().withTemperature(0.8f).withTopP(0.9f),
                SamplingParams.greedy().withTemperature(1.2f).withTopK(20)};
        for (String question : QUESTIONS) {
            for (int seed = 1; seed <= 4; seed++) {
                SamplingParams sampling = samplings[seed % samplings.length].withSeed(seed);
                GenerationRequest r = request(question).withSampling(sampling).withStreamId(seed);
                GenerationResult speculative = new SpeculativeDecoding(target, small, 3).generate(r);
                GenerationResult rapid = new RapidDecoding(target, small, 3, 0).generate(r, targetPrompt(r));
                String where = "seed " + seed + ", \"" + question + "\"";
                SpeculativeFixtures.assertSameOutputAsPlain(speculative, rapid, where);
                assertEquals(speculative.decodeStats().acceptedTokens(), rapid.decodeStats().acceptedTokens(), where);
            }
        }
    }

    @Test
    void theDrafterDraftsAfterItsOwnPromptAndTheGeneratedTokens() {
        // Whatever the target's prompt, each round's draft is greedy decoding of the drafter on its own prompt followed
        // by the tokens generated so far. Rounds as the chain task runs them: each context extends the last by the
        // draft tokens accepted and one token of the target's (here 2 accepted, then all 4, then none).
        int[] own = drafterPrompt(2, QUESTIONS.get(1));
        int[] targetPrompt = targetPrompt(request(QUESTIONS.get(1)));
        int[] generated = {};
        GenerationRequest greedy = GenerationRequest.ofIds(1).withMaxTokens(4);
        try (OwnPromptDrafter drafter = new OwnPromptDrafter(new DrafterModel(small, 0), own, targetPrompt.length)) {
            for (int accepted : new int[] {2, 4, 0}) {
                int[] context = Arrays.copyOf(SpeculativeFixtures.concat(targetPrompt, generated), targetPrompt.length + generated.length + 4);
                int[] draft = drafter.propose(context, targetPrompt.length + generated.length, 4, greedy,
                        new dev.tandem.decoding.DecodeStats.Recorder("rapid")).tokens();
                int[] expected = new Generator(small).generate(GenerationRequest.ofIds(SpeculativeFixtures.concat(own, generated))
                        .withMaxTokens(4).withEosTokenIds(List.of())).generatedIds();
                assertArrayEquals(expected, draft, generated.length + " tokens generated");
                assertArrayEquals(targetPrompt, Arrays.copyOf(context, targetPrompt.length), "the target's prompt is left as it was");
                generated = SpeculativeFixtures.concat(generated, Arrays.copyOf(draft, accepted + 1));
                generated[generated.length - 1] = 500 + generated.length; // the target's own token
            }
        }
        assertEquals(0, small.kvCache().usedBlocks());
    }

    @Test
    void theEngineGivesEachRapidRequestItsOwnTokensAmongOthers() {
        List<GenerationRequest> requests = new ArrayList<>();
        List<dev.tandem.decoding.DecodingStrategy> methods = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            String question = QUESTIONS.get(i % 2);
            GenerationRequest r = request(question).withMaxTokens(8 + 3 * i).withStreamId(i);
            if (i % 4 >= 2) {
                r = r.withSampling(SamplingParams.greedy().withTemperature(0.8f).withSeed(100 + i));
            }
            requests.add(r);
            // Drafters: bard-s and bard-l itself, each reading another passage; η 0, 10 and 40; and plain decoding.
            methods.add(i == 7 ? new Generator(target)
                    : new RapidDecoding(target, i % 2 == 0 ? small : target, 3, 10 * (i % 3) + (i % 3 == 2 ? 20 : 0))
                            .withDrafterPrompt(drafterPrompt(i % PASSAGES.size(), question)));
        }
        List<GenerationResult> alone = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
            alone.add(methods.get(i).generate(requests.get(i)));
        }
        try (Engine engine = new Engine(target, Engine.Options.defaults().withMaxPrefillTokensPerStep(16))) {
            List<EngineHandle> handles = new ArrayList<>();
            for (int i = 0; i < requests.size(); i++) {
                handles.add(engine.submit(requests.get(i), methods.get(i), null));
            }
            for (int i = 0; i < requests.size(); i++) {
                SpeculativeFixtures.assertSameOutputAsPlain(alone.get(i), handles.get(i).result(), "request " + i);
                assertEquals(methods.get(i).name(), handles.get(i).method());
            }
            assertEquals(0, engine.stats().reservedBlocks(), "every reservation ended");
        }
        assertEquals(0, target.kvCache().usedBlocks(), "the target's cache is empty again");
        assertEquals(0, small.kvCache().usedBlocks(), "the drafter's cache is empty again");
    }

    @Test
    void theDrafterReservesBlocksForItsOwnPrompt() {
        GenerationRequest r = request(QUESTIONS.getFirst());
        int[] own = drafterPrompt(0, QUESTIONS.getFirst());
        int p = targetPrompt(r).length;
        int extra = 3 + 1;
        DecodingTask self = new RapidDecoding(target, target, 3, 10).task(r, own);
        assertEquals(Tasks.blocks(target, p, r.maxTokens(), extra) + Tasks.blocks(target, own.length, r.maxTokens(), extra),
                self.blocksNeeded(target), "the drafter's sequence in the target's cache");
        DecodingTask other = new RapidDecoding(target, small, 3, 10).task(r, own);
        assertEquals(Tasks.blocks(small, own.length, r.maxTokens(), extra), other.blocksNeeded(small));
        assertEquals(Tasks.blocks(target, p, r.maxTokens(), extra), other.blocksNeeded(target));
        self.abandon();
        other.abandon();
    }

    @Test
    void aTargetAtTheEndOfItsContextEndsThereLikePlainDecoding() {
        for (int left : new int[] {1, 3, 6}) {
            GenerationRequest r = SpeculativeFixtures.leavingPositions(target, left);
            GenerationResult expected = SpeculativeFixtures.plainUpToTheContextEnd(target, r);
            int[] prompt = r.promptIds();
            int[] own = Arrays.copyOfRange(prompt, prompt.length - 40, prompt.length);
            SpeculativeFixtures.assertEndsAtTheContextLikePlain(new RapidDecoding(target, small, 4, 10).withDrafterPrompt(own), r,
                    expected, left + " positions left");
        }
    }

    @Test
    void aDrafterAtTheEndOfItsContextLeavesTheTargetDecodingAlone() {
        int[] own = SpeculativeFixtures.leavingPositions(small, 2).promptIds();
        GenerationRequest r = request(QUESTIONS.getFirst()).withMaxTokens(12);
        GenerationResult plain = new Generator(target).generate(r);
        GenerationResult rapid = new RapidDecoding(target, small, 4, 10).generate(r, own);
        SpeculativeFixtures.assertSameOutputAsPlain(plain, rapid, "a drafter 2 positions short of its context");
        // Room for 3 draft tokens after its prompt, for 2 after one more token, ...: at most 3 + 2 + 1 are drafted, then
        // the target decodes alone (a drafter fed past its context would fail instead).
        assertTrue(rapid.decodeStats().draftedTokens() <= 6, rapid.decodeStats().toString());
    }

    @Test
    void badInputIsOneSentence() throws Exception {
        for (double eta : new double[] {-1, Double.NaN, Double.NEGATIVE_INFINITY, Double.POSITIVE_INFINITY}) {
            assertEquals("--eta (η) must be a finite number of at least 0, but was " + eta + ".",
                    assertThrows(IllegalArgumentException.class, () -> new RapidDecoding(target, small, 4, eta)).getMessage());
        }
        assertEquals("the draft length must be at least 1, but was 0.",
                assertThrows(IllegalArgumentException.class, () -> new RapidDecoding(target, small, 0, 10)).getMessage());
        try (LanguageModel other = ModelLoader.load(TestModels.model("bard-dlm"), ModelLoader.Options.defaults().withBackend(target.backend()))) {
            TandemException e = assertThrows(TandemException.class, () -> new RapidDecoding(target, other, 4, 10));
            assertTrue(e.getMessage().contains("vocabulary of 2049 tokens")
                    && e.getMessage().endsWith("RAPID's drafter must share the target's tokenizer."), e.getMessage());
        }
        RapidDecoding rapid = new RapidDecoding(target, small, 4, 10);
        GenerationRequest r = request(QUESTIONS.getFirst());
        assertEquals("the drafter's prompt is empty; RAPID's drafter reads the retrieved passages and the question, so give it "
                + "at least one token.", assertThrows(TandemException.class, () -> rapid.task(r, new int[0])).getMessage());
        assertEquals("token id 2048 of the drafter's prompt is outside the vocabulary of 2048 (config.json vocab_size).",
                assertThrows(TandemException.class, () -> rapid.generate(r, new int[] {5, 2048})).getMessage());
        TandemException tooLong = assertThrows(TandemException.class, () -> rapid.withDrafterPrompt(new int[1025]));
        assertTrue(tooLong.getMessage().startsWith("the drafter's prompt has 1025 tokens, more than the drafter's context of 1024 tokens"),
                tooLong.getMessage());
        assertEquals(0, target.kvCache().usedBlocks());
        assertEquals(0, small.kvCache().usedBlocks());
    }

    /**
     * A coarse end-to-end check, as {@link SpeculativeSamplingEndToEndTest}'s (the rule's exactness is in
     * {@link NudgedVerifierTest}): every run prefills the target's whole prompt, so here the target is bard-m and its
     * context the first three passages (five on bard-l took 0.12 s a run on 2 cores). γ = 1, so accept-then-bonus and
     * reject-then-residual-then-next-round both reach the first two tokens.
     */
    @Test
    void atEtaZeroAShortDrafterPromptStillSamplesTheTargetsDistribution() {
        SamplingParams sampling = SamplingParams.greedy().withTemperature(1.0f).withTopK(4)
                .withSeed(SpeculativeSamplingEndToEndTest.SEED);
        String question = QUESTIONS.getFirst();
        GenerationRequest r = GenerationRequest.of(String.join("\n", PASSAGES.subList(0, 3)) + question).withMaxTokens(2)
                .withSampling(sampling);
        double[] joint = SpeculativeSamplingEndToEndTest.jointOfFirstTwo(medium, targetPrompt(r), sampling);
        RapidDecoding rapid = new RapidDecoding(medium, small, 1, 0).withDrafterPrompt(drafterPrompt(1, question));
        double pValue = SpeculativeSamplingEndToEndTest.firstTwoPValue(rapid, r, joint, RUNS);
        System.out.printf("rapid end-to-end, bard-m target, η = 0, bard-s drafter on one passage (seed %d, %d runs): chi-square p-value %.4g%n",
                SpeculativeSamplingEndToEndTest.SEED, RUNS, pValue);
        assertTrue(pValue > SpeculativeSamplingEndToEndTest.ALPHA, "p-value " + pValue);
    }

    static final int RUNS = 1500;
}
