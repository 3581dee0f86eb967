#!/usr/bin/env bash
# Instructions per produced message end to end on the in-process MockCluster (benches/throughput.rs,
# sampled at THROUGHPUT_SAMPLED (default 1.0), batch exporter, metrics on), all threads included (rdkafka's, the batch
# processor's), counted by valgrind's callgrind. Unlike the throughput ratios, they do not move
# with what else the machine runs. Each producer runs twice (N and 2N messages); the difference
# divided by N is its cost per message, without setup and teardown.
#   scripts/throughput_instructions.sh     (THROUGHPUT_MESSAGES=N, default 2000; THROUGHPUT_SAMPLED=0.1)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/callgrind.sh
bin=$(bench_binary otel-messaging-rdkafka throughput)
n=${THROUGHPUT_MESSAGES:-2000}
count() { (export THROUGHPUT_PRODUCER="$1" THROUGHPUT_MESSAGES="$2"; instructions "$bin"); }
declare -A per
for p in raw header floor traced; do
  a=$(count "$p" "$n"); b=$(count "$p" $((2 * n)))
  per[$p]=$(( (b - a) / n ))
  printf '%-8s %8d instructions/message\n' "$p" "${per[$p]}"
done
awk -v r="${per[raw]}" -v f="${per[floor]}" -v t="${per[traced]}" 'BEGIN {
  printf "\nabove raw: SDK floor %d, traced %d; traced ÷ floor %.2f\n", f - r, t - r, (t - r) / (f - r) }'
