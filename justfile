# otel-messaging tasks. `just test` is what CI runs.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# One trace through Kafka (in-process MockCluster unless KAFKA_BOOTSTRAP_SERVERS is set), printed as a waterfall.
demo:
    cargo run -p otel-messaging-rdkafka --example quickstart

# Bring the brokers up (Docker when an engine answers, native processes otherwise) and run every test.
test: check-compose brokers-up
    cargo test --workspace --all-targets --locked
    cargo test --workspace --doc --locked

# Start the test brokers and wait until they answer.
brokers-up:
    scripts/brokers.sh up

# Stop the brokers started by brokers-up.
brokers-down:
    scripts/brokers.sh down

# Validate docker-compose.yml when a docker client is present.
check-compose:
    scripts/brokers.sh check

# fmt, clippy and docs with warnings denied.
check:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# Criterion benchmark of the per-message overhead (sampled, unsampled, the hand-written pattern).
bench:
    cargo bench -p otel-messaging-rdkafka --bench overhead
