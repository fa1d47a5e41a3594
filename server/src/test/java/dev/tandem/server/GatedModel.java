package dev.tandem.server;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;

import java.nio.file.Path;

/**
 * A model whose forward passes a test can hold: while the gate is shut, a pass waits before it starts. bard-s decodes
 * thousands of tokens a second, so "a request still running" must be made, not hoped for.
 */
final class GatedModel implements LanguageModel {
    private final LanguageModel inner;
    private static final long OPEN = Long.MAX_VALUE;
    private final Object lock = new Object();
    private long allowed = OPEN; // passes that may still start; OPEN: any number
    private int waiting;

    GatedModel(LanguageModel inner) {
        this.inner = inner;
    }

    /** Shuts the gate: no further pass starts until {@link #allow} or {@link #release}. */
    void shut() {
        synchronized (lock) {
            allowed = 0;
        }
    }

    /** Lets {@code n} more passes through a shut gate. */
    void allow(int n) {
        synchronized (lock) {
            if (allowed != OPEN) {
                allowed += n;
                lock.notifyAll();
            }
        }
    }

    /** Returns once a pass waits at the shut gate (the engine is stopped in the middle of a request). */
    void awaitWaiting() throws InterruptedException {
        synchronized (lock) {
            while (waiting == 0) {
                lock.wait();
            }
        }
    }

    /** Opens the gate for good. */
    void release() {
        synchronized (lock) {
            allowed = OPEN;
            lock.notifyAll();
        }
    }

    @Override
    public ForwardResult forward(Batch batch) {
        synchronized (lock) {
            waiting++;
            lock.notifyAll();
            try {
                while (allowed == 0) {
                    lock.wait();
                }
                if (allowed != OPEN) {
                    allowed--;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            } finally {
                waiting--;
            }
        }
        return inner.forward(batch);
    }

    @Override
    public Path directory() {
        return inner.directory();
    }

    @Override
    public ModelConfig config() {
        return inner.config();
    }

    @Override
    public GenerationConfig generationConfig() {
        return inner.generationConfig();
    }

    @Override
    public Tokenizer tokenizer() {
        return inner.tokenizer();
    }

    @Override
    public Backend backend() {
        return inner.backend();
    }

    @Override
    public KvCache kvCache() {
        return inner.kvCache();
    }

    @Override
    public long parameterCount() {
        return inner.parameterCount();
    }

    @Override
    public DType weightDType() {
        return inner.weightDType();
    }

    @Override
    public long weightBytesPerToken() {
        return inner.weightBytesPerToken();
    }

    @Override
    public long multiplyAddsPerRow() {
        return inner.multiplyAddsPerRow();
    }

    @Override
    public float[][] logitsOfNormed(float[][] normedRows) {
        return inner.logitsOfNormed(normedRows);
    }

    @Override
    public void close() {
        inner.close();
    }
}
