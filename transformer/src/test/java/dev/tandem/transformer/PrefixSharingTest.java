package dev.tandem.transformer;

import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static dev.tandem.transformer.AttentionShapesTest.assertBitIdentical;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Prefix sharing through the model: a second sequence that attaches the first one's published full
 * blocks computes only the rest, uses that many fewer blocks, and gets the same logits bit for bit.
 */
class PrefixSharingTest {
    private static final long SEED = Long.getLong("tandem.test.seed", 20261126L);

    @Test
    void attachedPrefixBlocksSaveBlocksAndGiveIdenticalLogits() {
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-l"))) {
            int block = model.kvCache().blockSize();
            SplittableRandom rnd = new SplittableRandom(SEED);
            int k = 3;
            int[] shared = rnd.ints(k * block + 5, 0, model.config().vocabSize()).toArray();
            int[] tailA = rnd.ints(7, 0, model.config().vocabSize()).toArray();
            int[] tailB = rnd.ints(9, 0, model.config().vocabSize()).toArray();
            int[] promptA = concat(shared, tailA);
            int[] promptB = concat(shared, tailB);
            int free = model.kvCache().freeBlocks();

            // Two independent sequences, for reference.
            float[] aloneB;
            int independentBlocks;
            try (KvSequence a = model.newSequence(); KvSequence b = model.newSequence()) {
                model.forward(Batch.of(Batch.Entry.continuation(a, promptA)));
                aloneB = model.forward(Batch.of(Batch.Entry.continuation(b, promptB))).lastLogits(0);
                independentBlocks = free - model.kvCache().freeBlocks();
            }

            try (KvSequence a = model.newSequence(); KvSequence b = model.newSequence()) {
                model.forward(Batch.of(Batch.Entry.continuation(a, promptA)));
                a.publish(promptA);
                int attached = b.attachPrefix(promptB);
                assertEquals(k * block, attached, "the k full shared blocks are attached, the partial one is not");
                float[] sharedB = model.forward(Batch.of(Batch.Entry.continuation(b,
                        Arrays.copyOfRange(promptB, attached, promptB.length)))).lastLogits(0);
                assertEquals(independentBlocks - k, free - model.kvCache().freeBlocks());
                assertBitIdentical(aloneB, sharedB, "logits after an attached prefix");
            }
            assertEquals(free, model.kvCache().freeBlocks(), "every block is back");
        }
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
