//! Shared helpers of the integration tests: broker addresses, unique names, readiness checks.
//!
//! A missing broker is a test **failure** with instructions, never a silent skip.

use std::{
    net::{TcpStream, ToSocketAddrs},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub mod conformance_table;
pub mod interop;

/// The workspace root (the directory holding `Cargo.toml`, `interop/`, the READMEs).
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// Kafka bootstrap servers: `KAFKA_BOOTSTRAP_SERVERS`, default `127.0.0.1:9092` (tansu started by
/// `just brokers-up`).
pub fn kafka_bootstrap() -> String {
    let servers = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    require_reachable("Kafka", &servers);
    servers
}

/// Assigns `consumer` to partition 0 of `topic` from the first offset (the tests' topics have one
/// partition) and hands it back: every Kafka test reads what it produced this way, without waiting
/// for a group rebalance.
pub fn assign_from_start<C, X>(consumer: C, topic: &str) -> C
where
    C: rdkafka::consumer::Consumer<X>,
    X: rdkafka::consumer::ConsumerContext + 'static,
{
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, rdkafka::Offset::Beginning).expect("partition 0 of the topic");
    consumer.assign(&assignment).expect("assign");
    consumer
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

/// NATS URL of the tests: `NATS_URL`, default `nats://127.0.0.1:4222` (nats-server with JetStream,
/// started by `just brokers-up`).
pub fn nats_url() -> String {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let host_port = url.split("://").last().unwrap_or("").split('/').next().unwrap_or("").to_owned();
    require_reachable("NATS", &host_port);
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

/// A TCP proxy the test controls, to take the path to a broker away mid-stream and bring it back.
///
/// Listens on `127.0.0.1` (an ephemeral port) and forwards each connection to `upstream`.
/// [`cut`](Self::cut) closes every open connection and refuses new ones, as a broker that went
/// away would; [`restore`](Self::restore) accepts again. Only loopback traffic.
#[derive(Debug)]
pub struct FaultProxy {
    addr: std::net::SocketAddr,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`), open.
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        Self::serve(listener, upstream.to_owned())
    }

    /// Starts a proxy on an already bound listener (to know its port before the upstream exists).
    pub fn serve(listener: tokio::net::TcpListener, upstream: String) -> FaultProxy {
        use std::sync::atomic::Ordering;
        let addr = listener.local_addr().expect("proxy address");
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (open2, connections2) = (open.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !open2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections2
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(task.abort_handle());
            }
        });
        FaultProxy { addr, open, connections, accept }
    }

    /// The proxy's address, `127.0.0.1:port`.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Closes every forwarded connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A tansu broker of the test's own (in-memory storage), advertising the address of a
/// [`FaultProxy`] in front of it, so that every Kafka connection goes through the proxy.
/// Killed on drop. Needs the `tansu` binary that `just brokers-up` installs (`TANSU_BIN`, else
/// `tansu` on the `PATH` or in `~/.cargo/bin`).
#[derive(Debug)]
pub struct ProxiedKafka {
    /// The proxy every client connects through; its address is the bootstrap server.
    pub proxy: FaultProxy,
    child: std::process::Child,
}

impl ProxiedKafka {
    /// Starts tansu on a free port behind a new proxy and waits until it answers.
    pub async fn start() -> ProxiedKafka {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let proxy_addr = listener.local_addr().expect("address");
        let broker_port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let binary = std::env::var("TANSU_BIN").ok().unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_default();
            let installed = format!("{home}/.cargo/bin/tansu");
            if std::path::Path::new(&installed).exists() { installed } else { "tansu".to_owned() }
        });
        let child = std::process::Command::new(&binary)
            .env("CLUSTER_ID", "otel-messaging-faults")
            .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{broker_port}")])
            .args(["--advertised-listener-url", &format!("tcp://{proxy_addr}")])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start tansu ({binary}): {e}. Install it with `just brokers-up` or set TANSU_BIN."
                )
            });
        let upstream = format!("127.0.0.1:{broker_port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&upstream).is_err() {
            assert!(std::time::Instant::now() < deadline, "tansu did not listen on {upstream} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        ProxiedKafka { proxy: FaultProxy::serve(listener, upstream), child }
    }

    /// The bootstrap servers: the proxy's address.
    pub fn bootstrap(&self) -> String {
        self.proxy.addr().to_string()
    }
}

impl Drop for ProxiedKafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates `topic` (1 partition, replication 1) on the Kafka cluster at `bootstrap`.
pub async fn create_topic(bootstrap: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let results = admin
        .create_topics([&NewTopic::new(topic, 1, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("create topic");
    for result in results {
        result.expect("topic created");
    }
}

/// The AWS configuration of the tests: moto at [`sqs_endpoint`] (SQS and SNS), region
/// `us-east-1`, the test credentials `testing`/`testing`, `max_attempts` tries per call (the SDK
/// default is 3).
pub async fn aws_test_config(endpoint: &str, max_attempts: u32) -> aws_config::SdkConfig {
    use aws_config::{BehaviorVersion, Region};
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "static",
        ))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(max_attempts))
        .load()
        .await
}

/// An SQS client for `endpoint` (see [`aws_test_config`]).
pub async fn sqs_client(endpoint: &str, max_attempts: u32) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&aws_test_config(endpoint, max_attempts).await)
}

/// The ARN of the SQS queue at `url`, as SQS reports it.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn")
}

/// Subscribes the SQS queue at `url` to the SNS topic `topic_arn` (`raw`: raw message delivery,
/// the message attributes arriving as SQS message attributes; else inside the notification
/// envelope).
pub async fn subscribe_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    topic_arn: &str,
    url: &str,
    raw: bool,
) {
    sns.subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn(sqs, url).await)
        .attributes("RawMessageDelivery", if raw { "true" } else { "false" })
        .send()
        .await
        .expect("subscribe");
}

/// Starts a loopback HTTP proxy to moto's SQS endpoint that fixes one moto bug: in the JSON
/// protocol, moto writes `"SenderFault": "true"` (a string) in the `Failed` entries of a batch
/// response, which the AWS SDK rejects ("expected ValueBool"), so a partly failed batch cannot be
/// observed through moto directly. The proxy rewrites it to the boolean, keeping the byte length
/// (so `Content-Length` stays right), and changes nothing else. moto closes every connection
/// after its response, which the proxy relies on. Returns the endpoint URL to use.
pub async fn sqs_endpoint_fixing_sender_fault(endpoint: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let upstream = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else { return };
                let (mut client_read, mut client_write) = inbound.into_split();
                let (mut server_read, mut server_write) = outbound.into_split();
                let requests = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut response = Vec::new();
                let _ = server_read.read_to_end(&mut response).await;
                let (wrong, right) = (&b"\"SenderFault\": \"true\""[..], &b"\"SenderFault\":   true"[..]);
                let mut at = 0;
                while let Some(found) = response[at..].windows(wrong.len()).position(|w| w == wrong) {
                    response[at + found..at + found + wrong.len()].copy_from_slice(right);
                    at += found + wrong.len();
                }
                let _ = client_write.write_all(&response).await;
                let _ = client_write.shutdown().await;
                requests.abort();
            });
        }
    });
    format!("http://{addr}")
}

/// CPU time this process has used so far, in seconds, all its live threads together (the sum of
/// `/proc/self/task/*/schedstat`'s first field, nanoseconds on CPU; Linux only, `None`
/// elsewhere). Threads that have exited are not counted, so compare runs of the same program.
/// The throughput benchmarks report it per message beside the wall-clock rates: on a broker
/// whose round trip dominates, it shows what tracing costs where the rate cannot.
pub fn process_cpu_seconds() -> Option<f64> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut nanos: u64 = 0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        nanos += stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    }
    Some(nanos as f64 / 1e9)
}

/// A propagator that counts the contexts it reads (W3C Trace Context and Baggage underneath):
/// how many times the instrumentation read a message's propagation fields.
#[derive(Debug)]
pub struct CountingPropagator {
    inner: opentelemetry::propagation::TextMapCompositePropagator,
    readings: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// An instrumenter on `t`'s providers whose propagator counts its readings
/// ([`CountingPropagator`]), and the count.
pub fn counting_instrumenter(
    t: &otel_messaging::testing::TestTelemetry,
) -> (otel_messaging::MessagingInstrumenter, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let (counting, readings) = CountingPropagator::new();
    (t.instrumenter_builder().with_propagator(counting).build(), readings)
}

impl CountingPropagator {
    /// The propagator, and its count of readings.
    pub fn new() -> (Self, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let readings = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inner = opentelemetry::propagation::TextMapCompositePropagator::new(vec![
            Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
            Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new()),
        ]);
        (CountingPropagator { inner, readings: readings.clone() }, readings)
    }
}

impl opentelemetry::propagation::TextMapPropagator for CountingPropagator {
    fn inject_context(
        &self,
        cx: &opentelemetry::Context,
        injector: &mut dyn opentelemetry::propagation::Injector,
    ) {
        self.inner.inject_context(cx, injector);
    }

    fn extract_with_context(
        &self,
        cx: &opentelemetry::Context,
        extractor: &dyn opentelemetry::propagation::Extractor,
    ) -> opentelemetry::Context {
        self.readings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        self.inner.fields()
    }
}

/// A traced `ReceiveMessage` of up to 10 messages from `url`, waiting up to a second.
pub async fn sqs_receive_traced(
    client: &aws_sdk_sqs::Client,
    url: &str,
    tracing: &otel_messaging_aws_sqs::SqsInstrumentation,
) -> aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput {
    use otel_messaging_aws_sqs::ReceiveMessageFluentBuilderExt as _;
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send_traced_with(tracing)
        .await
        .expect("receive")
}

/// The span ids of the PRODUCER spans among `spans`.
pub fn producer_span_ids(
    spans: &[opentelemetry_sdk::trace::SpanData],
) -> std::collections::HashSet<opentelemetry::trace::SpanId> {
    spans
        .iter()
        .filter(|s| s.span_kind == opentelemetry::trace::SpanKind::Producer)
        .map(|s| s.span_context.span_id())
        .collect()
}
