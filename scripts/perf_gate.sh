#!/usr/bin/env bash
# Performance gate (issue "Performance by default"), run by `just test`: instruction counts per
# message of our path and of the SDK's own floor, in one release build and one run, counted by
# valgrind's callgrind (repeatable on a busy machine; wall time is not). Fails when a ratio passes
# its bar in perf-gate/targets.txt by more than 3 %.
#   scripts/perf_gate.sh              the gate
#   scripts/perf_gate.sh --self-test  the gate must fail on a variant made a quarter slower
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/callgrind.sh
if ! command -v callgrind_annotate >/dev/null; then
  # A fresh machine without valgrind: Debian's package, as brokers.sh installs its own.
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "[perf-gate] installing valgrind"
    apt-get install -y -qq valgrind >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq valgrind >/dev/null 2>&1; }
  fi
  command -v callgrind_annotate >/dev/null || { echo "[perf-gate] valgrind is missing: install it (Debian: apt-get install valgrind)" >&2; exit 1; }
fi
cargo build --release --locked -q -p perf-gate
bin="${CARGO_TARGET_DIR:-target}/release/perf-gate"
n=${PERF_GATE_N:-2000}
tolerance=1.03

variants=$("$bin")
declare -A per
cost() {
  local v=$1
  if [ -z "${per[$v]:-}" ]; then
    grep -qxF "$v" <<<"$variants" || { echo "[perf-gate] perf-gate has no variant $v (perf-gate/targets.txt)" >&2; exit 1; }
    local a b
    a=$(instructions "$bin" "$v" "$n"); b=$(instructions "$bin" "$v" $((2 * n)))
    [ -n "$a" ] && [ -n "$b" ] || { echo "[perf-gate] callgrind gave no count for $v" >&2; exit 1; }
    per[$v]=$(( (b - a) / n ))
  fi
  echo "${per[$v]}"
}

# gate FILE: prints each ratio against its bar; returns 1 when one passes it by more than 3 %.
gate() {
  local failed=0 base
  base=$(cost baseline)
  printf '[perf-gate] baseline %d instructions/message; bar × %s tolerated\n' "$base" "$tolerance"
  while read -r num den bar what; do
    case "$num" in ''|'#'*) continue ;; esac
    local a b
    a=$(cost "$num"); b=$(cost "$den")
    if ! awk -v a="$a" -v b="$b" -v base="$base" -v bar="$bar" -v tol="$tolerance" -v l="$num ÷ $den" -v w="$what" '
      BEGIN {
        r = (a - base) / (b - base)
        ok = r <= bar * tol
        printf "[perf-gate] %-58s %.3f  (bar %.2f, %s) %s\n", l, r, bar, w, ok ? "ok" : "FAILED"
        exit ok ? 0 : 1
      }'; then
      failed=1
    fi
  done < "$1"
  return $failed
}

if [ "${1:-}" = "--self-test" ]; then
  table=$(mktemp)
  sed 's#^ours_default/sampled floor/sampled#ours_default/sampled_slowed floor/sampled#' perf-gate/targets.txt > "$table"
  grep -q '^ours_default/sampled_slowed' "$table" || { echo "[perf-gate] self-test: no default-path row" >&2; exit 1; }
  if gate "$table" >/dev/null; then
    rm -f "$table"; echo "[perf-gate] self-test FAILED: a quarter more work passed the gate" >&2; exit 1
  fi
  rm -f "$table"; echo "[perf-gate] self-test ok: the slowed variant fails the gate"
  exit 0
fi
gate perf-gate/targets.txt
