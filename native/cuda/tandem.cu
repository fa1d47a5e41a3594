// The one translation unit nvcc compiles into Tandem's fatbin: every kernel file is included here.
#include "elementwise.cuh"
