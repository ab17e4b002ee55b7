#!/usr/bin/env bash
# Plants each bug of sim/planted/*.patch in a scratch copy of the workspace, one at a time, runs
# the CI seed set (seeds 1-300, 300 steps) until the first failing seed, then runs that seed twice
# more to show it reproduces exactly. Prints one table row per bug.
#
#   sim/planted/run.sh [patch ...]
set -eu
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${PLANTED_WORKDIR:-${TMPDIR:-/tmp}/gitops-reverser-planted}"
seeds="${PLANTED_SEEDS:-300}"
patches=("$@")
[ ${#patches[@]} -gt 0 ] || patches=("$root"/sim/planted/*.patch)

rm -rf "$work"
mkdir -p "$work"
# A copy of the tracked files (no target/), sharing one target dir across bugs.
git -C "$root" ls-files -z | (cd "$root" && xargs -0 cp --parents -t "$work")
export CARGO_TARGET_DIR="${PLANTED_TARGET_DIR:-$root/target/planted}"

echo "| bug | first failing seed (of $seeds) | first violation | reproduces |"
echo "| --- | --- | --- | --- |"
for p in "${patches[@]}"; do
  name="$(basename "$p" .patch)"
  (cd "$work" && git init -q . 2>/dev/null; git -C "$work" apply --check "$p" && git -C "$work" apply "$p")
  cargo build -q --release -p gitops-reverser-sim --manifest-path "$work/Cargo.toml"
  bin="$CARGO_TARGET_DIR/release/gitops-reverser-sim"
  out="$("$bin" --seed 1 --runs "$seeds" --no-shrink 2>&1 || true)"
  found="$(printf '%s\n' "$out" | awk '/^seed /{s=$2} /^FAILED/{print s; exit}')"
  first="$(printf '%s\n' "$out" | grep -m1 '^  - ' | sed 's/^  - //; s/|/\\|/g' | cut -c1-140 || true)"
  repro="-"
  if [ -n "$found" ]; then
    a="$( ("$bin" --seed "$found" --no-shrink 2>&1 || true) | sed -n 's/.*hash \([0-9a-f]*\).*/\1/p')"
    b="$( ("$bin" --seed "$found" --no-shrink 2>&1 || true) | sed -n 's/.*hash \([0-9a-f]*\).*/\1/p')"
    if [ "$a" = "$b" ]; then repro="yes (hash $a)"; else repro="NO ($a vs $b)"; fi
  fi
  echo "| $name | ${found:-not found} | ${first:-} | $repro |"
  git -C "$work" apply -R "$p"
done
