#!/usr/bin/env python3
"""Prints the per-message overhead table of the `per_message` criterion group: each variant's
median time minus the baseline (building the record headers), and the ratios the performance
targets are written in (BENCHMARKS.md). Reads criterion's estimates under
$CARGO_TARGET_DIR/criterion (default target/criterion)."""
import json
import os
import sys

root = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion", "per_message")


def median_ns(variant: str) -> float:
    path = os.path.join(root, variant.replace("/", "_"), "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


try:
    base = median_ns("baseline")
except FileNotFoundError:
    sys.exit(f"no criterion results under {root}: run `cargo bench -p otel-messaging-rdkafka --bench overhead` first")

rows = ["floor/sampled", "floor/unsampled", "seeds/sampled", "seeds/batch", "ours/sampled",
        "ours/sampled_metrics", "ours/sampled_metrics_partitions", "ours/batch", "ours/unsampled", "ours_sdk_propagator/sampled",
        "ours_sdk_propagator/unsampled"]
over = {}
for v in rows:
    try:
        over[v] = median_ns(v) - base
    except FileNotFoundError:
        pass

print(f"baseline (build the headers): {base / 1000:.2f} µs")
print(f"{'variant':<30} {'overhead/message':>17}")
for v, ns in over.items():
    print(f"{v:<30} {ns / 1000:>14.2f} µs")
ratios = [
    ("ours/sampled ÷ floor/sampled", "ours/sampled", "floor/sampled", 1.15),
    ("ours/unsampled ÷ floor/unsampled", "ours/unsampled", "floor/unsampled", 1.10),
    ("ours/sampled_metrics ÷ ours/sampled", "ours/sampled_metrics", "ours/sampled", 1.15),
    ("ours/batch ÷ seeds/batch", "ours/batch", "seeds/batch", 1.00),
    # The metrics target holds for a consumer of a wide topic too (512 attribute sets in turn).
    ("ours/sampled_metrics_partitions ÷ ours/sampled", "ours/sampled_metrics_partitions", "ours/sampled", 1.15),
]
# Not targets: what our layer adds when it uses the same (SDK) propagators as the floor.
layer = [
    ("ours_sdk_propagator/sampled ÷ floor/sampled", "ours_sdk_propagator/sampled", "floor/sampled"),
    ("ours_sdk_propagator/unsampled ÷ floor/unsampled", "ours_sdk_propagator/unsampled", "floor/unsampled"),
]
print()
for label, a, b, target in ratios:
    if a in over and b in over and over[b] > 0:
        r = over[a] / over[b]
        mark = "ok" if r <= target else "over"
        print(f"{label:<38} {r:5.2f}  (target ≤ {target:.2f}: {mark})")
for label, a, b in layer:
    if a in over and b in over and over[b] > 0:
        print(f"{label:<46} {over[a] / over[b]:5.2f}  (our layer on the SDK's propagators)")
