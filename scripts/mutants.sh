#!/usr/bin/env bash
# Mutation testing of the code whose tests must catch a broken promise: the core's propagation,
# parent/link policy, retry lineage and conformance checker, and each broker crate's carrier.
# Each file's mutants run against its own crate's tests (the core's with every feature, which its
# tests need). Prints cargo-mutants' lines and a summary: caught / missed / timeout / unviable.
#
#   scripts/mutants.sh [FILE...]     default: the files below
#
# cargo-mutants copies the tree for each of its jobs as it starts them: do not edit the tree while
# it runs (a copy taken mid-edit makes mutants "unviable"), or run it from a `git worktree`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
command -v cargo-mutants >/dev/null 2>&1 || cargo install cargo-mutants --locked
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(
    crates/otel-messaging/src/propagation.rs
    crates/otel-messaging/src/propagation/w3c.rs
    crates/otel-messaging/src/propagation/strict.rs
    crates/otel-messaging/src/propagation/fallback.rs
    crates/otel-messaging/src/propagation/recognize.rs
    crates/otel-messaging/src/propagation/baggage.rs
    crates/otel-messaging/src/retry.rs
    crates/otel-messaging/src/testing/conformance.rs
    crates/otel-messaging-rdkafka/src/carrier.rs
    crates/otel-messaging-lapin/src/carrier.rs
    crates/otel-messaging-aws-sqs/src/carrier.rs
    crates/otel-messaging-redis/src/carrier.rs
    crates/otel-messaging-async-nats/src/carrier.rs
    crates/otel-messaging-aws-sns/src/carrier.rs
  )
fi
out="$here/target/mutants"
mkdir -p "$out"
total_caught=0 total_missed=0 total_timeout=0 total_unviable=0
for file in "${files[@]}"; do
  crate=$(echo "$file" | cut -d/ -f2)
  log="$out/$(echo "$file" | tr '/' '_').log"
  dir="$out/$(echo "$file" | tr '/' '_')"
  # cargo-mutants exits non-zero when a mutant is missed: the summary below says so.
  cargo mutants --no-shuffle -j 1 --package "$crate" --test-package "$crate" --all-features \
    -f "$file" -o "$dir" >"$log" 2>&1 || true
  grep -E '^(MISSED|TIMEOUT)' "$log" || true
  count() {
    local n
    n=$(grep -c . "$dir/mutants.out/$1.txt" 2>/dev/null || true)
    echo "${n:-0}"
  }
  c=$(count caught); m=$(count missed); t=$(count timeout); u=$(count unviable)
  printf 'mutants %-55s caught %4d  missed %4d  timeout %3d  unviable %3d\n' "$file" "$c" "$m" "$t" "$u"
  total_caught=$((total_caught + c)); total_missed=$((total_missed + m))
  total_timeout=$((total_timeout + t)); total_unviable=$((total_unviable + u))
done
viable=$((total_caught + total_missed + total_timeout))
printf 'mutants: %d caught, %d missed, %d timeout (%d unviable); caught %s %% of viable\n' \
  "$total_caught" "$total_missed" "$total_timeout" "$total_unviable" \
  "$([ "$viable" -gt 0 ] && echo $((100 * (total_caught + total_timeout) / viable)) || echo 0)"
