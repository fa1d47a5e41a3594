// A kernel that measures the device rather than computes a model: the multiply-add peak of its
// arithmetic units (Backend.measureMultiplyAddPeak). The memory bandwidth is measured by a
// device-to-device copy (cuMemcpyDtoD), not a kernel.
#pragma once

// Each thread runs `iterations` rounds of 8 independent fused multiply-adds and writes the result to
// sink[thread]: 8 · iterations multiply-adds per thread.
extern "C" __global__ void tandem_multiply_add_peak(float* sink, int iterations, float a, float b) {
    float v0 = threadIdx.x, v1 = v0 + 1, v2 = v0 + 2, v3 = v0 + 3, v4 = v0 + 4, v5 = v0 + 5, v6 = v0 + 6, v7 = v0 + 7;
    for (int i = 0; i < iterations; i++) {
        v0 = fmaf(v0, a, b);
        v1 = fmaf(v1, a, b);
        v2 = fmaf(v2, a, b);
        v3 = fmaf(v3, a, b);
        v4 = fmaf(v4, a, b);
        v5 = fmaf(v5, a, b);
        v6 = fmaf(v6, a, b);
        v7 = fmaf(v7, a, b);
    }
    sink[(long long) blockIdx.x * blockDim.x + threadIdx.x] = v0 + v1 + v2 + v3 + v4 + v5 + v6 + v7;
}
