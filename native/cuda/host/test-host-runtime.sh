#!/usr/bin/env bash
# Builds and runs host_runtime_test.cpp, the tests of cuda_host.h (the fiber emulation of CUDA blocks that
# the host build of the kernels runs on): optimised, then under AddressSanitizer and UBSan, each in the
# default and in the reverse fiber order (TANDEM_HOST_FIBER_ORDER=reverse), then once with the <ucontext.h>
# fallback that other architectures use (not under ASan, which warns that it does not fully support
# swapcontext). Exits non-zero if a build or a run fails, or a sanitizer reports.
#
#   native/cuda/host/test-host-runtime.sh [BUILD_DIR]     (default: a temporary directory)
#
# g++ is $TANDEM_CXX, else g++ on the PATH.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cxx=${TANDEM_CXX:-g++}
if [[ $# -ge 1 ]]; then
    out=$1
    mkdir -p "$out"
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi
flags=(-std=c++20 -Wall -Wextra -Werror -pthread)

echo "== optimised (-O2): $($cxx --version | head -n 1)"
"$cxx" "${flags[@]}" -O2 -o "$out/host_runtime_test" "$here/host_runtime_test.cpp"
"$out/host_runtime_test"
TANDEM_HOST_FIBER_ORDER=reverse "$out/host_runtime_test"

echo "== AddressSanitizer + UBSan"
"$cxx" "${flags[@]}" -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1 \
    -o "$out/host_runtime_test_asan" "$here/host_runtime_test.cpp"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$out/host_runtime_test_asan" 1024
TANDEM_HOST_FIBER_ORDER=reverse "$out/host_runtime_test_asan" 1024

echo "== ucontext fallback (-DTANDEM_HOST_FIBER_UCONTEXT; a system call per switch, so fewer timed blocks)"
"$cxx" "${flags[@]}" -O2 -DTANDEM_HOST_FIBER_UCONTEXT -o "$out/host_runtime_test_ucontext" \
    "$here/host_runtime_test.cpp"
"$out/host_runtime_test_ucontext" 256

echo "host runtime tests: all runs passed"
