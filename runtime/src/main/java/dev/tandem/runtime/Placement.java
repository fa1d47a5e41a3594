package dev.tandem.runtime;

/**
 * Where a tensor's memory lives. Host memory is a {@link java.lang.foreign.MemorySegment} any Java code
 * may read; device memory is an address in an accelerator's memory that only the backend that
 * allocated it can read or write (copies to and from the host go through that backend).
 */
public enum Placement {
    HOST,
    DEVICE
}
