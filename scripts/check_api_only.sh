#!/usr/bin/env bash
# Instrumentation depends on the OpenTelemetry API only (OpenTelemetry's guidance for
# instrumentation libraries): with default features, no published crate of the workspace has
# `opentelemetry_sdk` among its normal (non-dev) dependencies. `--self-test` shows the check fails
# when the SDK is there (the core with `bound-metrics`, which pulls it on purpose).
set -euo pipefail
cd "$(dirname "$0")/.."

# Nor does an instrumentation crate choose the application's TLS backend or compression: with
# its default features, no published crate pulls one of these native libraries into the build
# (lapin's `rustls` brought aws-lc-rs, rdkafka's `libz` zlib). async-nats requires a crypto
# provider of its own; it uses `ring`, which is not on the list.
heavy='^(aws-lc-rs|aws-lc-sys|openssl-sys|native-tls|libz-sys|zstd-sys|lz4-sys) '
heavy_in() { # crate: the listed libraries in its normal dependency tree, space-separated
  cargo tree --locked -e normal -p "$1" --prefix none --format '{p}' | { grep -E "$heavy" || true; } | cut -d' ' -f1 | sort -u | tr '\n' ' '
}

sdk_in() { # crate [cargo tree args...]
  local crate=$1; shift
  cargo tree --locked -e normal -p "$crate" "$@" --prefix none --format '{p}' | grep -q '^opentelemetry_sdk '
}

if [[ ${1:-} == --self-test ]]; then
  sdk_in otel-messaging --features bound-metrics || { echo "check_api_only: self-test: SDK not seen"; exit 1; }
  echo "check_api_only self-test: the SDK is seen when a feature pulls it"
  # The workspace's tests take the AWS SDK's default HTTPS client (aws-lc-rs): it must be seen.
  [[ -n $(heavy_in integration-tests) ]] || { echo "check_api_only: self-test: aws-lc-rs not seen"; exit 1; }
  echo "check_api_only self-test: a TLS backend is seen where the tests pull one"
  exit 0
fi

status=0
for crate in otel-messaging otel-messaging-rdkafka otel-messaging-lapin otel-messaging-aws-sqs \
  otel-messaging-aws-sns otel-messaging-redis otel-messaging-async-nats; do
  if sdk_in "$crate"; then
    echo "check_api_only: $crate depends on opentelemetry_sdk with its default features" >&2
    status=1
  fi
  found=$(heavy_in "$crate" | xargs)
  if [[ -n $found ]]; then
    echo "check_api_only: $crate pulls $found with its default features: leave TLS and compression to the application's own client dependency" >&2
    status=1
  fi
done
"$0" --self-test
[[ $status == 0 ]] && echo "check_api_only: no broker crate or the core pulls opentelemetry_sdk, a TLS backend or a compression library by default"
exit $status
