package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.rag.PassageCache;
import dev.tandem.decoding.rag.RagDecoding;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The rag suite: time to first token of a question over retrieved passages, three ways, alternating within each
 * repetition so that all three see the same machine: a full prefill of the prefix, every passage and the question in
 * one causal pass (what plain decoding does with the passages pasted into the prompt); {@code --method rag} with the
 * passages already in the {@link PassageCache} (the question's prefill alone, attending to the cached passages); and
 * {@code --method rag} with an empty cache (the passages computed as independent segments in the request). The passages
 * and the question are token ids of the model's tokenizer (distinct per passage), so a random-weight synthetic shape
 * works as well as a trained model.
 */
public final class RagBench {

    /**
     * @param passages       passages per question (the figure: 7)
     * @param passageTokens  tokens per passage (256)
     * @param questionTokens tokens of the question (32)
     */
    public record Options(int passages, int passageTokens, int questionTokens, int repetitions, int threads) {
        public Options {
            if (passages < 1 || passageTokens < 1 || questionTokens < 1) {
                throw new IllegalArgumentException("--rag-passages, --rag-passage-tokens and --rag-question-tokens must be at least 1.");
            }
            if (repetitions < 1) {
                throw new IllegalArgumentException("--repetitions must be at least 1, got " + repetitions + ".");
            }
        }

        public static Options defaults(int threads) {
            return new Options(7, 256, 32, 5, threads);
        }
    }

    /** Times in milliseconds; {@code speedup} = full prefill over cached, per repetition. */
    public record Result(String model, String dtype, Options options, int contextTokens, Stats fullPrefillMillis,
                         Stats cachedMillis, Stats coldMillis, Stats speedup, MemorySnapshot memory) {}

    private RagBench() {}

    public static Result run(Path modelDir, String label, Options o, Progress progress) {
        try (LanguageModel model = ModelLoader.load(modelDir, ModelLoader.Options.defaults().withThreads(o.threads())
                .withKvTokens(3 * (o.passages() * (o.passageTokens() + 32) + o.questionTokens() + 64)))) {
            Integer bos = model.config().bosTokenId();
            int[] prefix = bos == null ? new int[0] : new int[] {bos};
            int[] sentence = DecodeBench.promptIds(model, 97);
            List<int[]> passages = new ArrayList<>();
            for (int p = 0; p < o.passages(); p++) {
                int[] ids = new int[o.passageTokens()];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = sentence[(i + 13 * p) % sentence.length];
                }
                passages.add(ids);
            }
            int[] question = new int[o.questionTokens()];
            for (int i = 0; i < question.length; i++) {
                question[i] = sentence[(i + 5) % sentence.length];
            }
            int[] full = new int[prefix.length + o.passages() * o.passageTokens() + question.length];
            int at = 0;
            System.arraycopy(prefix, 0, full, at, prefix.length);
            at += prefix.length;
            for (int[] p : passages) {
                System.arraycopy(p, 0, full, at, p.length);
                at += p.length;
            }
            System.arraycopy(question, 0, full, at, question.length);
            if (full.length >= model.config().maxContext()) {
                throw new TandemException(o.passages() + " passages of " + o.passageTokens() + " tokens and a " + question.length
                        + "-token question hold " + full.length + " tokens, more than the context of " + model.config().maxContext()
                        + " tokens of " + label + ".");
            }
            GenerationRequest request = new GenerationRequest(null, question, 1, SamplingParams.greedy(), List.of(), List.of(), 0, 0);
            double[] fullMs = new double[o.repetitions()];
            double[] cachedMs = new double[o.repetitions()];
            double[] coldMs = new double[o.repetitions()];
            double[] speedup = new double[o.repetitions()];
            long total = 3L * (o.repetitions() + 1);
            long done = 0;
            try (PassageCache cache = new PassageCache(model, model.kvCache().numBlocks() / 2)) {
                RagDecoding rag = new RagDecoding(model, cache, q -> passages).withSystemPrefix(prefix);
                for (int rep = -1; rep < o.repetitions(); rep++) {
                    long t0 = System.nanoTime();
                    try (KvSequence seq = model.newSequence()) {
                        Sampler.argmax(model.forward(Batch.of(Batch.Entry.continuation(seq, full))).lastLogits(0));
                    }
                    long t1 = System.nanoTime();
                    progress.update(++done, total);
                    cache.clear();
                    long t2 = System.nanoTime();
                    GenerationResult cold = rag.generate(request);
                    long t3 = System.nanoTime();
                    progress.update(++done, total);
                    GenerationResult cached = rag.generate(request);
                    long t4 = System.nanoTime();
                    progress.update(++done, total);
                    if (!Arrays.equals(cold.generatedIds(), cached.generatedIds())) {
                        throw new TandemException("the cached passages gave another first token than the same passages computed in the request.");
                    }
                    if (rep >= 0) {
                        fullMs[rep] = (t1 - t0) / 1e6;
                        coldMs[rep] = (t3 - t2) / 1e6;
                        cachedMs[rep] = (t4 - t3) / 1e6;
                        speedup[rep] = fullMs[rep] / cachedMs[rep];
                    }
                }
            }
            return new Result(label, model.weightDType().name().toLowerCase(Locale.ROOT), o, full.length, Stats.of(fullMs),
                    Stats.of(cachedMs), Stats.of(coldMs), Stats.of(speedup), MemorySnapshot.of(model));
        }
    }

    public static ObjectNode toJson(Result r) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("model", r.model());
        n.put("dtype", r.dtype());
        ObjectNode o = n.putObject("options");
        o.put("passages", r.options().passages());
        o.put("passage_tokens", r.options().passageTokens());
        o.put("question_tokens", r.options().questionTokens());
        o.put("repetitions", r.options().repetitions());
        o.put("threads", r.options().threads());
        n.put("tokens_attended", r.contextTokens());
        n.set("full_prefill_ttft_ms", r.fullPrefillMillis().toJson());
        n.set("rag_cached_ttft_ms", r.cachedMillis().toJson());
        n.set("rag_cold_ttft_ms", r.coldMillis().toJson());
        n.set("full_over_cached", r.speedup().toJson());
        n.set("memory", r.memory().toJson());
        return n;
    }
}
