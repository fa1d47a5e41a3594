package dev.tandem.bench;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Work done per benchmark call, which JMH divides by time like the ops themselves: the
 * {@code :gflop} line reads as GFLOP/s and the {@code :gbyte} line as GB/s of weights (matmul) or
 * KV cache (attention) streamed, although JMH prints both in "ops/s". Not final: JMH subclasses it.
 */
@AuxCounters(AuxCounters.Type.OPERATIONS)
@State(Scope.Thread)
public class WorkCounters {
    public double gflop;
    public double gbyte;

    @Setup(Level.Iteration)
    public void reset() {
        gflop = 0;
        gbyte = 0;
    }

    void add(double flop, double bytes) {
        gflop += flop * 1e-9;
        gbyte += bytes * 1e-9;
    }
}
