#!/usr/bin/env bash
# Instructions per message of each `per_message` variant (benches/overhead.rs), counted by
# valgrind's callgrind: unlike times, they do not move with what else the machine runs, so two
# builds can be compared on a busy machine. Each variant runs twice (N and 2N messages); the
# difference divided by N is its cost per message, without setup and teardown.
#   scripts/bench_instructions.sh [variant ...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/callgrind.sh
bin=$(bench_binary otel-messaging-rdkafka overhead)
n=${OVERHEAD_N:-2000}
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(baseline floor/sampled floor/unsampled seeds/sampled ours/sampled
  ours/sampled_metrics ours/sampled_metrics_partitions ours/unsampled ours_sdk_propagator/sampled
  ours_sdk_propagator/unsampled ours_default/sampled ours_default/unsampled extract_no_context)
count() { (export OVERHEAD_ONLY="$1" OVERHEAD_N="$2"; instructions "$bin"); }
declare -A per
for v in "${variants[@]}"; do
  a=$(count "$v" "$n"); b=$(count "$v" $((2 * n)))
  per[$v]=$(( (b - a) / n ))
  printf '%-24s %8d instructions/message\n' "$v" "${per[$v]}"
done
if [ -n "${per[baseline]:-}" ]; then
  ratio() { [ -n "${per[$1]:-}" ] && [ -n "${per[$2]:-}" ] && awk -v a="${per[$1]}" -v b="${per[$2]}" \
    -v base="${per[baseline]}" -v l="$3" 'BEGIN { printf "%-40s %.2f\n", l, (a - base) / (b - base) }'; }
  echo
  ratio ours/sampled floor/sampled "ours/sampled ÷ floor/sampled" || true
  ratio ours/unsampled floor/unsampled "ours/unsampled ÷ floor/unsampled" || true
  ratio ours/sampled_metrics ours/sampled "ours/sampled_metrics ÷ ours/sampled" || true
  ratio ours/sampled_metrics_partitions ours/sampled "ours/sampled_metrics_partitions ÷ ours/sampled" || true
  ratio ours/sampled seeds/sampled "ours/sampled ÷ seeds/sampled" || true
  ratio ours_sdk_propagator/sampled floor/sampled "ours_sdk_propagator/sampled ÷ floor/sampled" || true
  ratio ours_sdk_propagator/unsampled floor/unsampled "ours_sdk_propagator/unsampled ÷ floor/unsampled" || true
  ratio ours_default/sampled floor/sampled "ours_default/sampled ÷ floor/sampled" || true
  ratio ours_default/unsampled floor/unsampled "ours_default/unsampled ÷ floor/unsampled" || true
fi
