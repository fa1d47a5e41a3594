#!/usr/bin/env bash
# Writes the ptxas resource report of every kernel (registers, shared memory, stack, spills) for each
# architecture of the fatbin into docs/kernels.md, between its "ptxas report" markers. Not part of the
# build: run it after changing a kernel, and commit the result.
#
#   native/cuda/ptxas-report.sh [docs/kernels.md]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
doc=${1:-$here/../../docs/kernels.md}
nvcc=${TANDEM_NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[[ -x "$nvcc" ]] || { echo "error: nvcc not found (TANDEM_NVCC, PATH, /usr/local/cuda/bin); the report needs it." >&2; exit 1; }

table=$(mktemp)
trap 'rm -f "$table" "$table.cubin"' EXIT
{
    echo "Made by \`native/cuda/ptxas-report.sh\` with $("$nvcc" --version | tail -n 1), $(date -u +%Y-%m-%d)."
    echo
    echo "| kernel | target | registers | shared memory (bytes) | barriers | stack (bytes) | spill stores / loads (bytes) |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | --- |"
    for sm in 80 90 100; do
        "$nvcc" -cubin -Xptxas -v -gencode arch=compute_$sm,code=sm_$sm -o "$table.cubin" "$here/tandem.cu" 2>&1 | awk -v sm="sm_$sm" '
            /Compiling entry function/ { name = $0; sub(/.*function .\x27?/, "", name); sub(/\x27.*/, "", name); gsub(/\x27/, "", name) }
            /bytes stack frame/ { stack = $1; stores = $5; loads = $9 }
            /Used [0-9]+ registers/ {
                regs = $5; smem = 0; bars = 0
                if (match($0, /[0-9]+ bytes smem/)) { smem = substr($0, RSTART, RLENGTH); sub(/ bytes smem/, "", smem) }
                if (match($0, /used [0-9]+ barriers/)) { bars = substr($0, RSTART + 5, RLENGTH - 14) }
                printf "| `%s` | %s | %s | %s | %s | %s | %s / %s |\n", name, sm, regs, smem, bars, stack, stores, loads
            }' | sort
    done
} > "$table"

begin='<!-- ptxas report: begin -->'
end='<!-- ptxas report: end -->'
if ! grep -q "$begin" "$doc"; then
    echo "error: $doc has no \"$begin\" marker." >&2
    exit 1
fi
awk -v begin="$begin" -v end="$end" -v table="$table" '
    $0 == begin { print; while ((getline line < table) > 0) print line; skip = 1; next }
    $0 == end { skip = 0 }
    !skip { print }' "$doc" > "$doc.tmp"
mv "$doc.tmp" "$doc"
echo "ptxas report written to $doc"
