#!/usr/bin/env bash
# Builds the host build of Tandem's CUDA kernels: tandem.cu compiled by g++ through cuda_host.h, linked
# with host_driver.cpp into a shared library that exports the CUDA driver entry points the Java code
# calls. Tests point the Java CUDA code at it, so the kernels run in every build, without a GPU. Next to it
# (or at CUBLAS_OUT.so) it builds host_cublas.cpp into libtandem_cublas_host.so: the cuBLAS entry points
# the Java code calls (GemmEx, strided batched GemmEx), over the same host memory.
#
#   native/cuda/host/build-host.sh OUT.so [CUBLAS_OUT.so]
#
# g++ is $TANDEM_CXX, else g++ on the PATH (TANDEM_CXX=none: as if there were none). Without it the script
# says so and exits 0, and the tests that need the library report themselves skipped. Rebuilt only when a
# source is newer.
set -euo pipefail

out=${1:?usage: build-host.sh OUT.so [CUBLAS_OUT.so]}
cublas_out=${2:-$(dirname "$out")/libtandem_cublas_host.so}
here=$(cd "$(dirname "$0")" && pwd)

cxx=${TANDEM_CXX:-}
if [[ "$cxx" == none ]]; then
    cxx=
elif [[ -z "$cxx" ]]; then
    cxx=$(command -v g++ || true)
fi
if [[ -z "$cxx" ]]; then
    echo "notice: g++ not found (TANDEM_CXX, PATH), so the host build of the CUDA kernels and cuBLAS is not made;" \
        "the kernel tests will report themselves skipped."
    exit 0
fi

# build TARGET SOURCE [DEPENDENCY...]: compiles SOURCE into the shared library TARGET unless TARGET is
# newer than SOURCE, every DEPENDENCY and this script.
build() {
    local target=$1 source=$2 newest
    shift 2
    newest=$(ls -t "$source" "$@" "$0" | head -n 1)
    if [[ -f "$target" && "$target" -nt "$newest" ]]; then
        return 0
    fi
    mkdir -p "$(dirname "$target")"
    "$cxx" -std=c++20 -O2 -shared -fPIC -pthread -Wall -Wextra -Werror -o "$target.tmp" "$source"
    mv "$target.tmp" "$target"
    echo "CUDA host build: $(basename "$target") from $("$cxx" --version | head -n 1)"
}

build "$out" "$here/host_driver.cpp" "$here"/*.h "$here"/../*.cu "$here"/../*.cuh
build "$cublas_out" "$here/host_cublas.cpp"
