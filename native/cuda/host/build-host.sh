#!/usr/bin/env bash
# Builds the host build of Tandem's CUDA kernels: tandem.cu compiled by g++ through cuda_host.h, linked
# with host_driver.cpp into a shared library that exports the CUDA driver entry points the Java code
# calls. Tests point the Java CUDA code at it, so the kernels run in every build, without a GPU.
#
#   native/cuda/host/build-host.sh OUT.so
#
# g++ is $TANDEM_CXX, else g++ on the PATH (TANDEM_CXX=none: as if there were none). Without it the script
# says so and exits 0, and the tests that need the library report themselves skipped. Rebuilt only when a
# source is newer.
set -euo pipefail

out=${1:?usage: build-host.sh OUT.so}
here=$(cd "$(dirname "$0")" && pwd)

cxx=${TANDEM_CXX:-}
if [[ "$cxx" == none ]]; then
    cxx=
elif [[ -z "$cxx" ]]; then
    cxx=$(command -v g++ || true)
fi
if [[ -z "$cxx" ]]; then
    echo "notice: g++ not found (TANDEM_CXX, PATH), so the host build of the CUDA kernels is not made;" \
        "the kernel tests will report themselves skipped."
    exit 0
fi

newest_source=$(ls -t "$here"/*.h "$here"/*.cpp "$here"/../*.cu "$here"/../*.cuh | head -n 1)
if [[ -f "$out" && "$out" -nt "$newest_source" && "$out" -nt "$0" ]]; then
    exit 0
fi

mkdir -p "$(dirname "$out")"
"$cxx" -std=c++20 -O2 -shared -fPIC -pthread -Wall -Wextra -Werror -o "$out.tmp" "$here/host_driver.cpp"
mv "$out.tmp" "$out"
echo "CUDA kernels, host build: $(basename "$out") from $("$cxx" --version | head -n 1)"
