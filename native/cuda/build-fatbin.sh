#!/usr/bin/env bash
# Compiles Tandem's CUDA kernels (tandem.cu and what it includes) into one fatbin: real code for sm_80,
# sm_90 and sm_100 and PTX for compute_90, warnings as errors.
#
#   native/cuda/build-fatbin.sh OUT.fatbin
#
# nvcc is looked for in $TANDEM_NVCC, on the PATH, then in /usr/local/cuda/bin (TANDEM_NVCC=none: as if
# there were none). Without it the script says so and exits 0 (the build goes on without kernels; FatbinTest then reports itself skipped). The
# fatbin is rebuilt only when a source is newer. The Maven build runs this in runtime's
# generate-resources phase; CMakeLists.txt does the same for a build outside Maven.
set -euo pipefail

out=${1:?usage: build-fatbin.sh OUT.fatbin}
here=$(cd "$(dirname "$0")" && pwd)

nvcc=${TANDEM_NVCC:-}
if [[ "$nvcc" == none ]]; then
    nvcc=
elif [[ -n "$nvcc" && ! -x "$nvcc" ]]; then
    echo "error: TANDEM_NVCC is $nvcc, which is not an executable file." >&2
    exit 1
elif [[ -z "$nvcc" ]]; then
    nvcc=$(command -v nvcc || true)
    if [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]]; then
        nvcc=/usr/local/cuda/bin/nvcc
    fi
fi
if [[ -z "$nvcc" ]]; then
    echo "notice: nvcc not found (TANDEM_NVCC, PATH, /usr/local/cuda/bin), so the CUDA kernels are not compiled;" \
        "the CPU backend is unaffected."
    exit 0
fi

newest_source=$(ls -t "$here"/*.cu "$here"/*.cuh | head -n 1)
if [[ -f "$out" && "$out" -nt "$newest_source" && "$out" -nt "$0" ]]; then
    exit 0
fi

mkdir -p "$(dirname "$out")"
"$nvcc" -fatbin -Werror all-warnings -std=c++17 \
    -gencode arch=compute_80,code=sm_80 \
    -gencode arch=compute_90,code=sm_90 \
    -gencode arch=compute_100,code=sm_100 \
    -gencode arch=compute_90,code=compute_90 \
    -o "$out.tmp" "$here/tandem.cu"
mv "$out.tmp" "$out"
echo "CUDA kernels: $(basename "$out") ($(wc -c < "$out") bytes) from $("$nvcc" --version | tail -n 1)"
