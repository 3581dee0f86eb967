#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target (fuzz/fuzz_targets) for a given time each, and prints the
# executions per target. Runs every target, then exits non-zero if any crashed (the reproducer is
# in fuzz/artifacts), if none ran, or if a file in fuzz_targets/ is not a declared target; a unit
# that runs over 10 s counts as a crash.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [SANITIZER] [PARALLEL] [BUILD]
#
# SECONDS_PER_TARGET  default 60; `just test` runs a 15 s smoke
# SANITIZER           address (default: catches memory errors in the one `unsafe` module) or none
#                     (about 5x the executions per second, for long runs)
# PARALLEL            targets run at once (default 1; a 2-core machine takes 2)
# BUILD               release (default: optimised, for long runs) or dev (unoptimised, with debug
#                     assertions and overflow checks: builds in ≈ 60 % of the time, runs fewer
#                     executions per second; `just test`'s smoke, where the build is most of the time)
#
# Needs a nightly toolchain (present on the project's machines) and cargo-fuzz, which it installs
# from crates.io when missing. Corpora grow in fuzz/corpus/<target> (not committed); the seeds we
# wrote are in fuzz/seeds/<target>, the token dictionary in fuzz/dict/messaging.dict.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
sanitizer="${2:-address}"
parallel="${3:-1}"
build="${4:-release}"
case "$build" in
  release) mode=-O ;;
  dev) mode=--dev ;;
  *) log "BUILD must be release or dev, not $build"; exit 1 ;;
esac
log() { printf '[fuzz] %s\n' "$*" >&2; }

rustup toolchain list 2>/dev/null | grep -q '^nightly' \
  || { log "no nightly toolchain: cargo-fuzz needs one (rustup toolchain install nightly)"; exit 1; }
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked >/dev/null 2>&1 || { log "cargo install cargo-fuzz failed"; exit 1; }
fi

cd "$here/fuzz"
targets=$(cargo +nightly fuzz list)
# Every file in fuzz_targets/ must be a declared, listed target: none is silently skipped, and an
# empty list is a failure, not "0 passed".
declared=$(echo "$targets" | wc -w)
files=$(ls fuzz_targets/*.rs | wc -l)
[ "$declared" -gt 0 ] && [ "$declared" -eq "$files" ] \
  || { log "cargo fuzz lists $declared targets for $files files in fuzz/fuzz_targets"; exit 1; }
log "building $declared targets (sanitizer: $sanitizer, $build build)"
cargo +nightly fuzz build "$mode" -s "$sanitizer" >"$here/fuzz/build.log" 2>&1 \
  || { tail -30 "$here/fuzz/build.log" >&2; log "build failed (log: fuzz/build.log)"; exit 1; }

run_one() {
  local target="$1" out="logs/$1.log"
  mkdir -p "corpus/$target" "seeds/$target" logs
  if cargo +nightly fuzz run "$mode" -s "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -dict=dict/messaging.dict -print_final_stats=1 >"$out" 2>&1 </dev/null; then
    echo "OK $target $(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$out" | tail -1)"
  else
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "$out" >&2 || true
    echo "FAIL $target"
  fi
}
export -f run_one log
export seconds sanitizer mode

results=$(printf '%s\n' $targets | xargs -P "$parallel" -I{} bash -c 'run_one {}')
passed=0 failed=0
while read -r status target runs; do
  [ -n "$status" ] || continue
  if [ "$status" = OK ]; then
    passed=$((passed + 1)); printf '%-16s %12s executions in %ss, 0 crashes\n' "$target" "$runs" "$seconds"
  else
    failed=$((failed + 1)); printf '%-16s CRASHED (reproducer in fuzz/artifacts/%s)\n' "$target" "$target"
  fi
done <<<"$results"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
