#!/usr/bin/env bash
# The bounds and race checker of Tandem's CUDA kernels, on the host build (cuda_host.h), outside the JVM
# and outside the Maven build: builds kernel_check.cpp under AddressSanitizer and UBSan, checks that it
# has a check for every kernel in native/cuda (the same pattern as CudaKernelsTest finds them with), runs
# each kernel's check in its own process (so that a sanitizer's abort hides no other kernel), in the
# default and in the reverse fiber order (TANDEM_HOST_FIBER_ORDER=reverse), as many at a time as there are
# cores, and requires both runs to pass and to give bit-identical outputs (a difference is a race between
# the threads of a block). Prints one line per kernel and a verdict; exits 0 only when all passed.
#
#   native/cuda/host/check-kernels.sh
#
# g++ is $TANDEM_CXX, else g++ on the PATH. Builds in a temporary directory.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cxx=${TANDEM_CXX:-g++}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$SECONDS

failed() {
    echo "check-kernels: FAILED: $*"
    exit 1
}

command -v "$cxx" >/dev/null 2>&1 || failed "no C++ compiler: $cxx is not on the PATH (set TANDEM_CXX)."

echo "== building kernel_check.cpp under AddressSanitizer + UBSan: $("$cxx" --version | head -n 1)"
if ! "$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
    -Wall -Wextra -Werror -pthread -o "$out/kernel_check" "$here/kernel_check.cpp"; then
    failed "kernel_check.cpp did not compile (a kernel's signature changed, or one was removed?)."
fi

# The kernels in the sources: CudaKernelsTest's pattern, on the sources with every run of white space made
# one space.
mapfile -t in_sources < <(cat "$here"/../*.cu "$here"/../*.cuh | tr -s '[:space:]' ' ' |
    grep -oE 'extern "C" __global__ void( __launch_bounds__\([^)]*\))? [A-Za-z_][A-Za-z0-9_]* ?\(' |
    sed -E 's/^.* ([A-Za-z_][A-Za-z0-9_]*) ?\($/\1/' | sort -u)
mapfile -t checked < <("$out/kernel_check" --list | sort -u)
[[ " ${in_sources[*]} " == *" tandem_rmsnorm_f32 "* ]] ||
    failed "found no tandem_rmsnorm_f32 among the kernels in $here/.. (the pattern no longer matches the sources?): ${in_sources[*]}"
mapfile -t unchecked < <(comm -23 <(printf '%s\n' "${in_sources[@]}") <(printf '%s\n' "${checked[@]}"))

echo "== running ${#checked[@]} kernel checks, each in its own process, in the default and in the reverse fiber order"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1:redzone=2048}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_one() {  # run_one KERNEL forward|reverse: its output, errors and exit status in $out/KERNEL.ORDER.*
    if [[ $2 == reverse ]]; then
        export TANDEM_HOST_FIBER_ORDER=reverse
    else
        unset TANDEM_HOST_FIBER_ORDER
    fi
    "$out/kernel_check" "$1" >"$out/$1.$2.out" 2>"$out/$1.$2.err"
    echo $? >"$out/$1.$2.rc"
}
export -f run_one
export out
for k in "${checked[@]}"; do
    printf '%s forward\n%s reverse\n' "$k" "$k"
done | xargs -P "$(nproc 2>/dev/null || echo 2)" -n 2 bash -c 'run_one "$@"' run_one

# "kernel NAME cases N digest HEX ok|FAILED", per run.
field() {  # field KERNEL ORDER INDEX
    [[ -f "$out/$1.$2.out" ]] && awk -v k="$1" -v i="$3" '$1 == "kernel" && $2 == k { print $i }' "$out/$1.$2.out"
}
bad=0
summary=()
all=("${checked[@]}" "${unchecked[@]}")
for k in "${all[@]}"; do
    why=
    if [[ " ${unchecked[*]} " == *" $k "* ]]; then
        why="kernel_check.cpp has no check for this kernel of the sources; add one"
    elif [[ " ${in_sources[*]} " != *" $k "* ]]; then
        why="kernel_check.cpp checks it, but the sources have no such kernel"
    else
        for order in forward reverse; do
            rc=$(cat "$out/$k.$order.rc" 2>/dev/null || echo "?")
            if [[ "$rc" != 0 || -s "$out/$k.$order.err" ]]; then
                echo "-- $k, $order fiber order: exit status $rc"
                grep '^  FAIL' "$out/$k.$order.out"
                head -n 60 "$out/$k.$order.err"
            fi
        done
        f_status=$(field "$k" forward 7)
        r_status=$(field "$k" reverse 7)
        stopped=
        for order in forward reverse; do
            in_case="in case [$(sed -n 's/^case //p' "$out/$k.$order.out" | tail -n 1)], $order fiber order"
            if grep -q 'ERROR: AddressSanitizer' "$out/$k.$order.err"; then
                stopped="AddressSanitizer stopped it ($(grep -m 1 -o 'AddressSanitizer: [a-z-]*' "$out/$k.$order.err" |
                    sed 's/AddressSanitizer: //'), $in_case)"
            elif grep -q 'runtime error:' "$out/$k.$order.err"; then
                stopped="UBSan stopped it (undefined behaviour: $(grep -m 1 -o 'runtime error: .*' "$out/$k.$order.err" |
                    sed 's/runtime error: //'), $in_case)"
            fi
            [[ -z "$stopped" && -n "$(field "$k" "$order" 7)" ]] || break
        done
        if [[ -n "$stopped" ]]; then
            why=$stopped
        elif [[ -z "$f_status" || -z "$r_status" ]]; then
            why="the check did not finish ($in_case; see its output above)"
        elif [[ "$f_status" != ok || "$r_status" != ok ]]; then
            why="wrong results (default order: $f_status, reverse: $r_status; see above)"
        elif [[ "$(field "$k" forward 6)" != "$(field "$k" reverse 6)" ]]; then
            why="outputs differ between the default and the reverse fiber order: a race between the threads of a block"
        elif [[ "$(cat "$out/$k.forward.rc")" != 0 || "$(cat "$out/$k.reverse.rc")" != 0 || -s "$out/$k.forward.err" || -s "$out/$k.reverse.err" ]]; then
            why="the checker exited with an error or reported on stderr (see above)"
        fi
    fi
    if [[ -n "$why" ]]; then
        summary+=("$(printf 'FAIL  %-30s %s' "$k" "$why")")
        bad=$((bad + 1))
    else
        summary+=("$(printf 'ok    %-30s %2s cases, in bounds, same bits in both fiber orders, matches the reference' "$k" "$(field "$k" forward 4)")")
    fi
done
printf '%s\n' "${summary[@]}"

if [[ $bad -ne 0 ]]; then
    failed "$bad of ${#all[@]} kernels failed the bounds, race or result checks; see the lines above."
fi
echo "check-kernels: all ${#all[@]} kernels passed (AddressSanitizer + UBSan, both fiber orders," \
    "references) in $((SECONDS - start)) s."
