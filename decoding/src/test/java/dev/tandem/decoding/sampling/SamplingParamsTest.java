package dev.tandem.decoding.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

class SamplingParamsTest {

    private static final SamplingParams BASE = new SamplingParams(1f, 0, 1f, 0f, 1f, 42L);

    private static void assertRejected(String parameter, String range, Executable construct) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, construct);
        assertTrue(e.getMessage().startsWith(parameter + " must be"), e.getMessage());
        assertTrue(e.getMessage().contains(range), e.getMessage());
    }

    @Test
    void invalidTemperatureIsRejectedNamingItsRange() {
        assertRejected("temperature", ">= 0", () -> BASE.withTemperature(-0.1f));
        assertRejected("temperature", ">= 0", () -> BASE.withTemperature(Float.NaN));
        assertRejected("temperature", "finite", () -> BASE.withTemperature(Float.POSITIVE_INFINITY));
    }

    @Test
    void invalidTopKIsRejectedNamingItsRange() {
        assertRejected("topK", ">= 0", () -> BASE.withTopK(-1));
    }

    @Test
    void invalidTopPIsRejectedNamingItsRange() {
        assertRejected("topP", "(0, 1]", () -> BASE.withTopP(0f));
        assertRejected("topP", "(0, 1]", () -> BASE.withTopP(1.01f));
        assertRejected("topP", "(0, 1]", () -> BASE.withTopP(Float.NaN));
    }

    @Test
    void invalidMinPIsRejectedNamingItsRange() {
        assertRejected("minP", "[0, 1)", () -> BASE.withMinP(-0.01f));
        assertRejected("minP", "[0, 1)", () -> BASE.withMinP(1f));
    }

    @Test
    void invalidRepetitionPenaltyIsRejectedNamingItsRange() {
        assertRejected("repetitionPenalty", "> 0", () -> BASE.withRepetitionPenalty(0f));
        assertRejected("repetitionPenalty", "> 0", () -> BASE.withRepetitionPenalty(-1f));
        assertRejected("repetitionPenalty", "finite", () -> BASE.withRepetitionPenalty(Float.POSITIVE_INFINITY));
    }

    @Test
    void boundaryValuesAreAccepted() {
        new SamplingParams(0f, 0, 1f, 0f, Float.MIN_VALUE, Long.MIN_VALUE);
        new SamplingParams(Float.MAX_VALUE, Integer.MAX_VALUE, Float.MIN_VALUE, 0.999f, 100f, -1L);
    }

    @Test
    void greedyIsTemperatureZeroWithEveryKnobOff() {
        SamplingParams g = SamplingParams.greedy();
        assertTrue(g.isGreedy());
        assertEquals(new SamplingParams(0f, 0, 1f, 0f, 1f, 0L), g);
        assertFalse(BASE.isGreedy());
    }

    @Test
    void withersChangeOnlyTheirComponent() {
        assertEquals(new SamplingParams(0.5f, 0, 1f, 0f, 1f, 42L), BASE.withTemperature(0.5f));
        assertEquals(new SamplingParams(1f, 7, 1f, 0f, 1f, 42L), BASE.withTopK(7));
        assertEquals(new SamplingParams(1f, 0, 0.9f, 0f, 1f, 42L), BASE.withTopP(0.9f));
        assertEquals(new SamplingParams(1f, 0, 1f, 0.05f, 1f, 42L), BASE.withMinP(0.05f));
        assertEquals(new SamplingParams(1f, 0, 1f, 0f, 1.2f, 42L), BASE.withRepetitionPenalty(1.2f));
        assertEquals(new SamplingParams(1f, 0, 1f, 0f, 1f, 7L), BASE.withSeed(7L));
    }
}
