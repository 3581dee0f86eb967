#!/usr/bin/env bash
# Instrumentation depends on the OpenTelemetry API only (OpenTelemetry's guidance for
# instrumentation libraries): with default features, no published crate of the workspace has
# `opentelemetry_sdk` among its normal (non-dev) dependencies. `--self-test` shows the check fails
# when the SDK is there (the core with `bound-metrics`, which pulls it on purpose).
set -euo pipefail
cd "$(dirname "$0")/.."

sdk_in() { # crate [cargo tree args...]
  local crate=$1; shift
  cargo tree --locked -e normal -p "$crate" "$@" --prefix none --format '{p}' | grep -q '^opentelemetry_sdk '
}

if [[ ${1:-} == --self-test ]]; then
  sdk_in otel-messaging --features bound-metrics || { echo "check_api_only: self-test: SDK not seen"; exit 1; }
  echo "check_api_only self-test: the SDK is seen when a feature pulls it"
  exit 0
fi

status=0
for crate in otel-messaging otel-messaging-rdkafka otel-messaging-lapin otel-messaging-aws-sqs \
  otel-messaging-aws-sns otel-messaging-redis otel-messaging-async-nats; do
  if sdk_in "$crate"; then
    echo "check_api_only: $crate depends on opentelemetry_sdk with its default features" >&2
    status=1
  fi
done
"$0" --self-test
[[ $status == 0 ]] && echo "check_api_only: no broker crate or the core pulls opentelemetry_sdk by default"
exit $status
