// The one translation unit nvcc compiles into Tandem's fatbin: every kernel file is included here.
#include "elementwise.cuh"
#include "matmul.cuh"
#include "quant.cuh"
#include "attention.cuh"
#include "rows.cuh"
#include "roofline.cuh"
#include "sampling.cuh"
