# otel-messaging tasks. `just test` is what CI runs.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# One trace through Kafka (in-process MockCluster unless KAFKA_BOOTSTRAP_SERVERS is set), printed as a waterfall.
demo:
    cargo run -p otel-messaging-rdkafka --example quickstart

# Bring the brokers up (native processes), install the interop peers, and run every test: `check` (fmt, clippy, rustdoc, each crate's own features),
# unit, integration (incl. broker faults, a 2 000-message soak per broker, and the Python/Node
# interop cases), doc tests, `just demo` with its waterfall asserted (one trace, the queue gap
# drawn), a 15-second smoke of every fuzz target (unoptimised build with overflow checks, ASan), and the performance gate (instruction-count
# ratios to the SDK's floor under callgrind, perf-gate/targets.txt; with its own negative test).
test: check check-compose brokers-up interop-setup
    cargo test --workspace --all-targets --locked
    cargo test --workspace --doc --locked
    python3 scripts/check_demo.py --self-test
    cargo run --locked -q -p otel-messaging-rdkafka --example quickstart | python3 scripts/check_demo.py
    scripts/fuzz.sh 15 address 2 dev
    scripts/perf_gate.sh --self-test
    scripts/perf_gate.sh

# Run every fuzz target for SECONDS each and print the executions (sanitizer none: ~5x faster).
fuzz seconds="600" sanitizer="none" parallel="2":
    scripts/fuzz.sh {{seconds}} {{sanitizer}} {{parallel}}

# Soak: COUNT messages per broker (10 % with garbage metadata) through traced producers and
# consumers on the real brokers, in a release build; prints the figures per broker.
soak count="100000": brokers-up
    SOAK_MESSAGES={{count}} cargo test --release --locked -p integration-tests --test soak -- --nocapture

# Install the pinned interop peers (interop/python/.venv from PyPI, interop/node/node_modules by
# `npm ci`; Python and Node from Debian's packages when missing). Runs once per lock-file content.
interop-setup:
    bash interop/setup.sh

# Only the interop cases: our crates against the Python and Node SDKs' official instrumentations.
interop: brokers-up interop-setup
    cargo test --locked -p integration-tests --test interop

# Start the test brokers (native processes; docker-compose.yml is for trying the library with
# Jaeger) and wait until they answer.
brokers-up:
    scripts/brokers.sh up

# Stop the brokers started by brokers-up.
brokers-down:
    scripts/brokers.sh down

# Validate docker-compose.yml when a docker client is present.
check-compose:
    scripts/brokers.sh check

# fmt, clippy and docs with warnings denied; then each crate alone, so that the workspace's
# feature unification (integration-tests turns on `testing` and `tracing`) hides nothing: every
# crate with its default features, the core with `bound-metrics` (opt-in), and no broker crate
# pulling `opentelemetry_sdk`, a TLS backend or a compression library with its default features
# (instrumentation depends on the API only, and leaves TLS and compression to the application).
check:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
    for p in otel-messaging otel-messaging-rdkafka otel-messaging-lapin otel-messaging-aws-sqs otel-messaging-aws-sns otel-messaging-redis otel-messaging-async-nats; do cargo clippy --locked -p "$p" --lib -- -D warnings; done
    cargo clippy --locked -p otel-messaging --lib --features bound-metrics -- -D warnings
    cargo test --locked -p otel-messaging --features bound-metrics,testing --lib --test instrumenter
    scripts/check_api_only.sh

# Criterion benchmark of the per-message overhead (the SDK floor, the hand-written pattern, ours:
# sampled, unsampled, metrics, batch exporter) in one group, with allocations per message, then the
# overhead table and the target ratios (BENCHMARKS.md); then traced/raw throughput on a MockCluster
# and on every real broker (tansu, RabbitMQ, Redis, moto, NATS JetStream), at 100 % and 10 % sampling.
bench: brokers-up
    cargo bench -p otel-messaging-rdkafka --bench overhead
    python3 scripts/bench_ratios.py
    THROUGHPUT_KAFKA=127.0.0.1:9092 cargo bench -p otel-messaging-rdkafka --bench throughput
    cargo bench -p integration-tests --bench throughput

# Instructions per message of each micro-benchmark variant under callgrind: comparable between
# builds on a busy machine, where times are not (BENCHMARKS.md). Needs valgrind.
bench-instructions *variants:
    scripts/bench_instructions.sh {{variants}}

# Needs valgrind; `THROUGHPUT_SAMPLED=0.1 just throughput-instructions` for 10 % sampling.
# Instructions per produced and per consumed message end to end on the MockCluster, ours, the
# SDK floor's and ours without metrics, all threads (callgrind)
throughput-instructions:
    scripts/throughput_instructions.sh

# Mutation testing (cargo-mutants, installed when missing): mutates the core's propagation, policy,
# retry lineage and conformance code and the broker crates' carriers, runs each crate's own tests
# against every mutant, and reports caught / missed / timeout (TESTING.md). Not part of `just test`.
# FILES narrows it (e.g. `just mutants crates/otel-messaging/src/propagation.rs`).
mutants *files:
    scripts/mutants.sh {{files}}

