package dev.tandem.bench;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Bytes a memory-bound kernel moves per call, which JMH divides by time like the ops themselves: the
 * {@code :gbyte} line reads as GB/s (JMH prints it in "ops/s"). {@link WorkCounters} without the FLOP
 * line, for kernels whose arithmetic is not the point. Not final: JMH subclasses it.
 */
@AuxCounters(AuxCounters.Type.OPERATIONS)
@State(Scope.Thread)
public class ByteCounter {
    public double gbyte;

    @Setup(Level.Iteration)
    public void reset() {
        gbyte = 0;
    }

    void add(double bytes) {
        gbyte += bytes * 1e-9;
    }
}
