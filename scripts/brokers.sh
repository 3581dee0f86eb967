#!/usr/bin/env bash
# Brings the test brokers up (or down) as native processes, installing what is missing where it
# can. Idempotent: a broker already listening is left alone. The tests need the native route (the
# Kafka fault test runs a tansu of its own, and the cluster id is this script's); Docker Compose
# (docker-compose.yml) is for trying the library with Jaeger, not for `just test`.
#
#   scripts/brokers.sh up      start every broker and wait until each answers
#   scripts/brokers.sh down    stop what this script started
#   scripts/brokers.sh check   validate docker-compose.yml when a docker client is present
#
# RabbitMQ: Debian's rabbitmq-server (`rabbitmq-server -detached`), guest/guest on 127.0.0.1:5672.
# Redis: Debian's redis-server on 127.0.0.1:6379, no persistence.
# SQS: moto_server 5.2.1 from PyPI on 127.0.0.1:5000 (region us-east-1, credentials testing/testing).
# NATS: Debian's nats-server with JetStream (`-js`, storage under .brokers/nats) on 127.0.0.1:4222.
# Kafka: tansu 0.6.0 (`cargo install tansu --version 0.6.0 --features dynostore` at opt-level 1, ~6-7 min
# the first time on 2 cores, cached in ~/.cargo/bin afterwards), in-memory storage, 127.0.0.1:9092.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$here/.brokers"
mkdir -p "$state"

KAFKA_PORT="${KAFKA_PORT:-9092}"
RABBITMQ_PORT=5672
REDIS_PORT=6379
SQS_PORT=5000
NATS_PORT=4222
MOTO_VERSION="5.2.1"
TANSU_VERSION="0.6.0"
export KAFKA_CLUSTER_ID="${KAFKA_CLUSTER_ID:-otel-messaging-test}"

log() { printf '[brokers] %s\n' "$*" >&2; }
die() { printf '[brokers] ERROR: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port name seconds
  local deadline=$((SECONDS + $3))
  until port_open "$1"; do
    [ $SECONDS -lt $deadline ] || die "$2 did not open port $1 within $3 s (log: $state/$2.log)"
    sleep 0.1
  done
}


compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@";
  elif command -v docker-compose >/dev/null 2>&1; then docker-compose "$@";
  else return 127; fi
}

check_compose() {
  command -v docker >/dev/null 2>&1 || { log "no docker client: docker-compose.yml not validated"; return 0; }
  if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    log "docker client without the compose plugin: installing Debian's docker-compose to validate the file"
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      (apt-get install -y -qq docker-compose >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq docker-compose >/dev/null 2>&1; }) \
        || die "could not install docker-compose; install the compose plugin to validate docker-compose.yml"
    else
      die "no compose command; install the docker compose plugin to validate docker-compose.yml"
    fi
  fi
  compose -f "$here/docker-compose.yml" config -q || die "docker-compose.yml is invalid"
  log "docker-compose.yml is valid"
}

ensure_tansu() {
  if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION" \
     && tansu --help 2>/dev/null | grep -q dynostore; then
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || die "tansu is missing and cargo is not installed to build it"
  # A test broker, not a production one: opt-level 1 without LTO and with many codegen units builds
  # in ~6.5 min on 2 cores (tansu's own release profile: ~10-13 min), and serves the tests as well.
  log "installing tansu $TANSU_VERSION with --features dynostore (first time: ~6-7 min on 2 cores)"
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 \
  CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_INCREMENTAL=false \
  cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked >"$state/tansu-install.log" 2>&1 \
    || die "cargo install tansu failed (log: $state/tansu-install.log)"
}

kafka_up() {
  if port_open "$KAFKA_PORT"; then log "Kafka already listening on $KAFKA_PORT"; return 0; fi
  ensure_tansu
  log "starting tansu on 127.0.0.1:$KAFKA_PORT (memory storage, cluster id $KAFKA_CLUSTER_ID)"
  CLUSTER_ID="$KAFKA_CLUSTER_ID" nohup tansu broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/ >"$state/tansu.log" 2>&1 &
  echo $! >"$state/tansu.pid"
  wait_port "$KAFKA_PORT" tansu 30
  log "Kafka ready"
}

apt_install() { # package...
  command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || die "$* missing: install it (Debian: apt-get install $*)"
  log "installing $* from Debian"
  apt-get install -y -qq "$@" >"$state/apt.log" 2>&1 \
    || { apt-get update -qq >>"$state/apt.log" 2>&1 && apt-get install -y -qq "$@" >>"$state/apt.log" 2>&1; } \
    || die "apt-get install $* failed (log: $state/apt.log)"
}

rabbitmq_up() {
  if port_open "$RABBITMQ_PORT"; then log "RabbitMQ already listening on $RABBITMQ_PORT"; return 0; fi
  command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
  # The node name must resolve; fall back to localhost when the hostname does not.
  if ! getent hosts "$(hostname)" >/dev/null 2>&1; then export RABBITMQ_NODENAME=rabbit@localhost; fi
  log "starting rabbitmq-server"
  rabbitmq-server -detached >"$state/rabbitmq.log" 2>&1 || die "rabbitmq-server failed to start (log: $state/rabbitmq.log)"
  touch "$state/rabbitmq.started"
  wait_port "$RABBITMQ_PORT" rabbitmq 90
  rabbitmqctl await_startup --timeout 60 >/dev/null 2>&1 || log "rabbitmqctl await_startup did not confirm; port is open"
  log "RabbitMQ ready"
}

redis_up() {
  if port_open "$REDIS_PORT"; then log "Redis already listening on $REDIS_PORT"; return 0; fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  log "starting redis-server on 127.0.0.1:$REDIS_PORT (no persistence)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --logfile "$state/redis.log" --pidfile "$state/redis.pid" || die "redis-server failed to start"
  local deadline=$((SECONDS + 20))
  until redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do
    [ $SECONDS -lt $deadline ] || die "Redis did not answer PING within 20 s (log: $state/redis.log)"
    sleep 0.1
  done
  log "Redis ready"
}

sqs_up() {
  if port_open "$SQS_PORT"; then log "SQS endpoint already listening on $SQS_PORT"; return 0; fi
  if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
    log "installing moto[server]==$MOTO_VERSION from PyPI"
    python3 -m pip install --quiet "moto[server]==$MOTO_VERSION" >"$state/pip.log" 2>&1 \
      || die "pip install moto[server] failed (log: $state/pip.log)"
  fi
  log "starting moto (SQS) on 127.0.0.1:$SQS_PORT"
  # `python3 -m moto.server` is moto_server without relying on a console-script shim (pyenv needs a
  # rehash before a freshly installed one appears).
  nohup python3 -m moto.server -H 127.0.0.1 -p "$SQS_PORT" >"$state/moto.log" 2>&1 &
  echo $! >"$state/moto.pid"
  local deadline=$((SECONDS + 30))
  until curl -s -o /dev/null "http://127.0.0.1:$SQS_PORT/moto-api/"; do
    [ $SECONDS -lt $deadline ] || die "moto did not answer within 30 s (log: $state/moto.log)"
    sleep 0.1
  done
  log "SQS endpoint ready"
}

nats_up() {
  if port_open "$NATS_PORT"; then log "NATS already listening on $NATS_PORT"; return 0; fi
  command -v nats-server >/dev/null 2>&1 || apt_install nats-server
  log "starting nats-server with JetStream on 127.0.0.1:$NATS_PORT"
  nohup nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$state/nats" >"$state/nats.log" 2>&1 &
  echo $! >"$state/nats.pid"
  wait_port "$NATS_PORT" NATS 20
  log "NATS ready"
}

up() {
  kafka_up
  rabbitmq_up
  redis_up
  sqs_up
  nats_up
}

down() {
  if [ -e "$state/rabbitmq.started" ]; then rabbitmqctl stop >/dev/null 2>&1 || true; rm -f "$state/rabbitmq.started"; fi
  for pidfile in "$state"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  log "stopped"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  check) check_compose ;;
  *) die "usage: $0 up|down|check" ;;
esac
