package dev.tandem.decoding.speculative;

import com.fasterxml.jackson.databind.JsonNode;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Whole models on the CUDA backend, on the host build of the kernels in every build and on a GPU where
 * one is present (elsewhere that half reports itself skipped, with the reason): bard-l reproduces its
 * golden logits and greedy paths, greedy generation equals the CPU backend's token for token, and
 * speculative and tree decoding (bard-s drafting) equal plain greedy on the same backend.
 */
class CudaEndToEndTest {
    /** Tokens per generation: enough for drafts to be accepted and rejected, few enough for the host build. */
    private static final int TOKENS = 16;

    private static Backend open(String which) {
        return CudaTestBackends.open(which);
    }

    private static GenerationRequest request(String prompt) {
        return GenerationRequest.of(prompt).withMaxTokens(TOKENS);
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void goldenLogitsAndGreedyPathsOfBardL(String which) throws IOException {
        try (Backend backend = open(which);
             LanguageModel model = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withBackend(backend))) {
            assertTrue(model.backend().name().startsWith("cuda"), model.backend().name());
            for (JsonNode c : SpeculativeFixtures.golden().get("cases")) {
                int[] promptIds = TestModels.ints(c.get("prompt_ids"));
                try (KvSequence seq = model.newSequence()) {
                    float[] logits = model.forward(Batch.of(Batch.Entry.continuation(seq, promptIds))).lastLogits(0);
                    JsonNode expected = c.get("last_logits");
                    double maxDiff = 0;
                    for (int i = 0; i < logits.length; i++) {
                        maxDiff = Math.max(maxDiff, Math.abs(logits[i] - expected.get(i).asDouble()));
                    }
                    assertTrue(maxDiff <= 1e-4, c.get("prompt").asText() + ": max |logit − reference| = " + maxDiff);
                    int[] greedy = TestModels.ints(c.get("greedy_ids"));
                    int[] got = new int[greedy.length];
                    for (int step = 0; step < greedy.length; step++) {
                        got[step] = TestModels.argmax(logits);
                        if (step + 1 < greedy.length) {
                            logits = model.forward(Batch.of(Batch.Entry.continuation(seq, got[step]))).lastLogits(0);
                        }
                    }
                    assertArrayEquals(greedy, got, c.get("prompt").asText() + ": greedy path on " + which);
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void greedyEqualsTheCpuAndSpeculationAndTreesEqualGreedy(String which) throws IOException {
        List<String> prompts = SpeculativeFixtures.goldenPromptsAnd(List.of());
        Function<String, GenerationRequest> request = CudaEndToEndTest::request;
        List<GenerationResult> onCpu;
        try (LanguageModel cpuTarget = ModelLoader.load(TestModels.model("bard-l"))) {
            onCpu = SpeculativeFixtures.plainGreedy(cpuTarget, prompts, request);
        }
        try (Backend backend = open(which);
             LanguageModel target = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withBackend(backend));
             LanguageModel draft = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(backend))) {
            List<GenerationResult> onCuda = SpeculativeFixtures.plainGreedy(target, prompts, request);
            List<String> differ = new ArrayList<>();
            for (int i = 0; i < prompts.size(); i++) {
                if (!java.util.Arrays.equals(onCpu.get(i).generatedIds(), onCuda.get(i).generatedIds())) {
                    differ.add(prompts.get(i));
                }
            }
            assertTrue(differ.isEmpty(), "greedy on " + which + " differs from the CPU backend for " + differ);
            SpeculativeFixtures.assertSameAsPlain(new SpeculativeDecoding(target, draft, 4), prompts, onCuda, request,
                    "speculative on " + which, SpeculativeFixtures.NO_EXTRA_CHECKS);
            SpeculativeFixtures.assertSameAsPlain(TreeDecoding.of(target, draft), prompts, onCuda, request,
                    "tree on " + which, SpeculativeFixtures.NO_EXTRA_CHECKS);
        }
    }

    /**
     * Greedy speculative and tree decoding keep their logits on the device: the drafter's passes send back greedy
     * tokens or logit summaries and the verification pass greedy tokens, so what a whole generation copies to the
     * host stays below one row of logits per generated token (asking for logits would copy γ + 1 rows a
     * verification and one a draft token).
     */
    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void greedySpeculationReadsBackIdsNotLogits(String which) throws IOException {
        try (Backend backend = open(which);
             LanguageModel target = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withBackend(backend));
             LanguageModel draft = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(backend))) {
            dev.tandem.runtime.cuda.CudaBackend cuda = (dev.tandem.runtime.cuda.CudaBackend) backend;
            long logitsRowBytes = 4L * target.config().vocabSize();
            String prompt = SpeculativeFixtures.goldenPromptsAnd(List.of()).getFirst();
            long before = cuda.bytesCopiedToHost();
            GenerationResult r = new SpeculativeDecoding(target, draft, 4).generate(request(prompt), e -> {});
            long copied = cuda.bytesCopiedToHost() - before;
            int generated = r.generatedIds().length;
            assertTrue(generated == TOKENS, "generated " + generated);
            assertTrue(copied < generated * logitsRowBytes, "speculative greedy copied " + copied + " bytes to the host for "
                    + generated + " tokens; one row of logits is " + logitsRowBytes + " bytes");
            // Tree decoding: the drafter's passes send back summaries (top-k ids, two sums), the tree pass greedy tokens.
            before = cuda.bytesCopiedToHost();
            GenerationResult tree = TreeDecoding.of(target, draft).generate(request(prompt), e -> {});
            long treeCopied = cuda.bytesCopiedToHost() - before;
            assertArrayEquals(r.generatedIds(), tree.generatedIds(), "tree equals speculative (both equal plain greedy)");
            assertTrue(treeCopied < generated * logitsRowBytes, "tree greedy copied " + treeCopied + " bytes to the host for "
                    + generated + " tokens; one row of logits is " + logitsRowBytes + " bytes");
            // The same request asking for logprobs reads logits back: the bound above is not met by accident.
            before = cuda.bytesCopiedToHost();
            new SpeculativeDecoding(target, draft, 4).generate(request(prompt).withLogprobs(1), e -> {});
            long withLogprobs = cuda.bytesCopiedToHost() - before;
            assertTrue(withLogprobs >= generated * logitsRowBytes, "with logprobs: " + withLogprobs + " bytes");
        }
    }

    /**
     * Sampling with a temperature alone draws and verifies on the device: plain decoding draws each token there,
     * speculative decoding ({@link DeviceVerification}) has the draft model draw its tokens there and the verification
     * kernel decide. The tokens are those of the host's draws and verification from the same backend's logits (asked
     * for by a request that also wants logprobs), for plain decoding, a draft model and prompt lookup, while far less
     * than a row of logits per token comes back.
     */
    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void sampledSpeculationVerifiesOnTheDeviceAsTheHostDoes(String which) throws IOException {
        try (Backend backend = open(which);
             LanguageModel target = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withBackend(backend));
             LanguageModel draft = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(backend))) {
            dev.tandem.runtime.cuda.CudaBackend cuda = (dev.tandem.runtime.cuda.CudaBackend) backend;
            long logitsRowBytes = 4L * target.config().vocabSize();
            List<String> prompts = SpeculativeFixtures.goldenPromptsAnd(List.of()).subList(0, 2); // the host build is slow
            int rejected = 0;
            for (dev.tandem.decoding.DecodingStrategy method : List.of(new dev.tandem.decoding.Generator(target),
                    new SpeculativeDecoding(target, draft, 4), new PromptLookupDecoding(target))) {
                long generated = 0;
                long copied = 0;
                for (int i = 0; i < prompts.size(); i++) {
                    GenerationRequest request = request(prompts.get(i)).withSampling(
                            dev.tandem.decoding.sampling.SamplingParams.greedy().withTemperature(0.9f).withSeed(17 + i));
                    long before = cuda.bytesCopiedToHost();
                    GenerationResult onDevice = method.generate(request, e -> {});
                    copied += cuda.bytesCopiedToHost() - before;
                    generated += onDevice.generatedIds().length;
                    GenerationResult onHost = method.generate(request.withLogprobs(1), e -> {});
                    assertArrayEquals(onHost.generatedIds(), onDevice.generatedIds(), method.name() + " on " + prompts.get(i));
                    var stats = onDevice.decodeStats();
                    rejected += stats.draftedTokens() > stats.acceptedTokens() ? 1 : 0;
                }
                assertTrue(copied < generated * logitsRowBytes, method.name() + " sampled copied " + copied + " bytes to the host for "
                        + generated + " tokens; one row of logits is " + logitsRowBytes + " bytes");
                // The rows kept on the device are freed with the request (the models' scratch is warm by now).
                long allocated = backend.allocatedBytes();
                method.generate(request(prompts.getFirst()).withSampling(
                        dev.tandem.decoding.sampling.SamplingParams.greedy().withTemperature(0.9f).withSeed(99)), e -> {});
                assertEquals(allocated, backend.allocatedBytes(), method.name() + ": device memory after a request");
            }
            assertTrue(rejected > 0, "some drafts were rejected (the residual draw ran)");
        }
    }
}
