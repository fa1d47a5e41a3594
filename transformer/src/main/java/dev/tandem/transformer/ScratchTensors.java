package dev.tandem.transformer;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Tensor;

/**
 * A model's working tensors on its backend, one per slot, kept between passes and grown (doubling) when a pass needs
 * more rows, so that a pass allocates nothing once the sizes have been seen. Not thread-safe: a model's passes use it
 * one at a time.
 */
public final class ScratchTensors implements AutoCloseable {
    private final Backend backend;
    private final Tensor[] slots;

    public ScratchTensors(Backend backend, int slots) {
        this.backend = backend;
        this.slots = new Tensor[slots];
    }

    /** Slot {@code slot} as a [rows, width] f32 tensor (its contents are whatever the last pass left there). */
    public Tensor get(int slot, int rows, long width) {
        Tensor t = slots[slot];
        long need = rows * width;
        if (t == null || t.numel() < need) {
            long cap = Math.max(need, t == null ? 0 : 2 * t.numel());
            if (t != null) {
                slots[slot] = null;
                backend.free(t);
            }
            t = backend.allocate(cap);
            slots[slot] = t;
        }
        return t.head(rows, width);
    }

    /** Frees every slot. */
    @Override
    public void close() {
        for (int i = 0; i < slots.length; i++) {
            if (slots[i] != null) {
                backend.free(slots[i]);
                slots[i] = null;
            }
        }
    }
}
