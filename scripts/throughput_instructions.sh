#!/usr/bin/env bash
# Instructions per message end to end on the in-process MockCluster (benches/throughput.rs,
# sampled at THROUGHPUT_SAMPLED (default 1.0), batch exporter, metrics on), all threads included
# (rdkafka's, the batch processor's), counted by valgrind's callgrind. Unlike the throughput
# ratios, they do not move with what else the machine runs. Each producer and each consumer runs
# twice (N and 2N messages); the difference divided by N is its cost per message, without setup
# and teardown. The consumers read records the SDK floor's producer sent (the same for all three),
# so what the producing costs cancels out of "above raw".
#   scripts/throughput_instructions.sh     (THROUGHPUT_MESSAGES=N, default 2000; THROUGHPUT_SAMPLED=0.1;
#                                           THROUGHPUT_SIDES=CONSUMER for one side;
#                                           THROUGHPUT_VARIANTS="raw traced_batch_nometrics" for some)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/callgrind.sh
bin=$(bench_binary otel-messaging-rdkafka throughput)
n=${THROUGHPUT_MESSAGES:-2000}
# count SIDE VARIANT MESSAGES: SIDE is PRODUCER or CONSUMER.
count() { (export "THROUGHPUT_$1=$2" THROUGHPUT_MESSAGES="$3"; instructions "$bin"); }
declare -A per
for side in ${THROUGHPUT_SIDES:-PRODUCER CONSUMER}; do
  variants="raw floor traced traced_nometrics"
  [ "$side" = PRODUCER ] && variants="raw header floor traced traced_nometrics"
  variants=${THROUGHPUT_VARIANTS:-$variants}
  for v in $variants; do
    a=$(count "$side" "$v" "$n"); b=$(count "$side" "$v" $((2 * n)))
    per[$side/$v]=$(( (b - a) / n ))
    printf '%-8s %-8s %8d instructions/message\n' "${side,,}" "$v" "${per[$side/$v]}"
  done
  [ -n "${THROUGHPUT_VARIANTS:-}" ] && continue  # no summary for a chosen few
  awk -v side="${side,,}" -v r="${per[$side/raw]}" -v f="${per[$side/floor]}" -v t="${per[$side/traced]}" -v m="${per[$side/traced_nometrics]}" 'BEGIN {
    printf "%s above raw: SDK floor %d, traced %d, metrics off %d; traced ÷ floor %.2f, metrics off %.2f\n\n",
      side, f - r, t - r, m - r, (t - r) / (f - r), (m - r) / (f - r) }'
done
