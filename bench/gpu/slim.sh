#!/usr/bin/env bash
# Sets aside, for one device call, the tracked files the GPU check does not read, so that the working tree plus
# the bundle fit the device tool's 64 MiB; then puts them back.
#
#   bash bench/gpu/slim.sh aside     # before the device tool's run: moves them to .gpu-aside/ (ignored) and
#                                    # unstages them (git rm --cached), so the tool neither copies nor misses them
#   bash bench/gpu/slim.sh restore   # right after it: moves them back and restages them; the tree is as before
#   bash bench/gpu/slim.sh status    # what is set aside now
#
# Set aside: the model the GPU check does not load (bard-dlm: the diffusion test writes its own small
# checkpoint), the transformer module's test checkpoints and tokenizers (its tests run on the CPU) and the
# benchmark results. Never commit while they are aside: restore first (`git status` would show them deleted).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
ASIDE=".gpu-aside"
PATHS=(models/bard-dlm transformer/src/test/resources/families transformer/src/test/resources/tokenizers bench/results)

case "${1:-}" in
  aside)
    if [ -e "$ASIDE/MANIFEST" ]; then
      echo "slim.sh: files are set aside already (see $ASIDE/MANIFEST); restore them first." >&2
      exit 2
    fi
    if ! grep -qx '.gpu-aside/' .gitignore; then
      echo "slim.sh: .gitignore lacks .gpu-aside/, so the set-aside files would still travel." >&2
      exit 2
    fi
    mkdir -p "$ASIDE"
    : > "$ASIDE/MANIFEST.tmp"
    for p in "${PATHS[@]}"; do
      [ -e "$p" ] || continue
      mkdir -p "$ASIDE/$(dirname "$p")"
      git rm -r -q --cached -- "$p"
      mv "$p" "$ASIDE/$p"
      echo "$p" >> "$ASIDE/MANIFEST.tmp"
    done
    mv "$ASIDE/MANIFEST.tmp" "$ASIDE/MANIFEST"
    bytes="$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')"
    awk -v t="$bytes" 'BEGIN { printf "slim.sh: set aside; the working tree now carries %.1f MiB (plus the bundle). Restore after the call: bash bench/gpu/slim.sh restore\n", t / 1048576 }'
    ;;
  restore)
    if [ ! -e "$ASIDE/MANIFEST" ]; then
      echo "slim.sh: nothing is set aside." >&2
      exit 0
    fi
    while IFS= read -r p; do
      [ -n "$p" ] || continue
      mkdir -p "$(dirname "$p")"
      mv "$ASIDE/$p" "$p"
      git reset -q -- "$p"
    done < "$ASIDE/MANIFEST"
    rm -rf "$ASIDE"
    echo "slim.sh: restored; git status:"
    git status --short | head -n 20
    ;;
  status)
    if [ -e "$ASIDE/MANIFEST" ]; then echo "set aside:"; cat "$ASIDE/MANIFEST"; else echo "nothing is set aside."; fi
    ;;
  *)
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
