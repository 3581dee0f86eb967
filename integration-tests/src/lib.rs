//! Shared helpers of the integration tests: broker addresses, unique names, readiness checks.
//!
//! A missing broker is a test **failure** with instructions, never a silent skip.

use std::{
    net::{TcpStream, ToSocketAddrs},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Kafka bootstrap servers: `KAFKA_BOOTSTRAP_SERVERS`, default `127.0.0.1:9092` (tansu started by
/// `just brokers-up`).
pub fn kafka_bootstrap() -> String {
    let servers = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    require_reachable("Kafka", &servers);
    servers
}

/// AMQP URI of the test RabbitMQ: `AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`.
pub fn amqp_url() -> String {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let authority = url.split("://").nth(1).unwrap_or("").split('/').next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    require_reachable("RabbitMQ", host_port);
    url
}

/// Redis URL of the test Redis: `REDIS_URL`, default `redis://127.0.0.1:6379/`.
pub fn redis_url() -> String {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let host_port = url.split("://").nth(1).unwrap_or("").split('/').next().unwrap_or("");
    let host_port = host_port.rsplit('@').next().unwrap_or(host_port);
    require_reachable("Redis", host_port);
    url
}

/// SQS endpoint of the tests: `SQS_ENDPOINT_URL`, default `http://127.0.0.1:5000` (moto_server).
pub fn sqs_endpoint() -> String {
    let url = std::env::var("SQS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    let host_port = url.split("://").nth(1).unwrap_or("").split('/').next().unwrap_or("").to_owned();
    require_reachable("SQS endpoint", &host_port);
    url
}

/// The cluster id the test broker was started with (`KAFKA_CLUSTER_ID`, default the one
/// `scripts/brokers.sh` gives tansu).
pub fn kafka_cluster_id() -> String {
    std::env::var("KAFKA_CLUSTER_ID").unwrap_or_else(|_| "otel-messaging-test".into())
}

/// Fails the test with instructions when `address` (the first of a comma-separated list) does not
/// accept TCP connections.
pub fn require_reachable(name: &str, address: &str) {
    let first = address.split(',').next().unwrap_or(address);
    let reachable = first
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "{name} is not reachable at {address}. Start the test brokers with `just brokers-up` \
         (or run `just test`, which starts them), or point the test at a broker with the \
         environment variable."
    );
}

/// A destination name unique to this test run: `{prefix}-{pid}-{time}-{n}`.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        millis % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
