use super::*;

fn key<'a>(destination: &'a str, partition: &'a str, operation_type: OperationType) -> MetricKey<'a> {
    MetricKey {
        system: "kafka",
        operation_name: if operation_type == OperationType::Send { "send" } else { "process" },
        operation_type,
        destination: Some(destination),
        template: None,
        partition: Some(partition),
        group: None,
        server: Some(("kafka-1", Some(9092))),
    }
}

fn value(set: &MetricSet, name: &str) -> Option<String> {
    set.attributes.iter().find(|kv| kv.key.as_str() == name).map(|kv| kv.value.to_string())
}

/// Reliability review M3: a set exists once in the process, however many threads use it (the
/// per-thread caches hold references), and a set no thread holds any more is freed.
#[test]
#[allow(clippy::expect_used)]
fn threads_share_one_set_per_key() {
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    let instruments =
        Instruments::new(&opentelemetry::metrics::MeterProvider::meter(&provider, "t"), MAX_ATTRIBUTE_SETS);
    let sets: Vec<Arc<MetricSet>> = (0..8)
        .map(|_| {
            let instruments = instruments.clone();
            std::thread::spawn(move || instruments.resolve(&key("orders", "3", OperationType::Send)))
                .join()
                .expect("thread")
        })
        .collect();
    assert!(sets.iter().all(|set| Arc::ptr_eq(set, &sets[0])), "one set for eight threads");
    let other = instruments.resolve(&key("orders", "4", OperationType::Send));
    assert!(!Arc::ptr_eq(&other, &sets[0]), "another partition, another set");
    let weak = Arc::downgrade(&sets[0]);
    drop(sets);
    assert!(weak.upgrade().is_none(), "freed with its threads' caches");
}

#[test]
fn sets_are_kept_beyond_the_recent_ones_and_each_has_its_own_attributes() {
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    let instruments =
        Instruments::new(&opentelemetry::metrics::MeterProvider::meter(&provider, "t"), MAX_ATTRIBUTE_SETS);
    let partitions: Vec<String> = (0..300).map(|p| p.to_string()).collect();
    let resolve_all = || -> Vec<Arc<MetricSet>> {
        partitions
            .iter()
            .flat_map(|p| {
                [OperationType::Send, OperationType::Process]
                    .map(|t| instruments.resolve(&key("orders", p, t)))
            })
            .collect()
    };
    let first = resolve_all();
    let second = resolve_all();
    for ((a, b), p) in first.iter().zip(&second).zip(partitions.iter().flat_map(|p| [p, p])) {
        assert!(Arc::ptr_eq(a, b), "partition {p}: the set was rebuilt instead of found");
        assert_eq!(value(a, semconv::MESSAGING_DESTINATION_PARTITION_ID).as_deref(), Some(p.as_str()));
    }
    assert_eq!(value(&first[0], semconv::MESSAGING_OPERATION_NAME).as_deref(), Some("send"));
    assert_eq!(value(&first[1], semconv::MESSAGING_OPERATION_NAME).as_deref(), Some("process"));
    // A different instrumenter never gets another one's sets.
    let other =
        Instruments::new(&opentelemetry::metrics::MeterProvider::meter(&provider, "u"), MAX_ATTRIBUTE_SETS);
    assert!(!Arc::ptr_eq(&other.resolve(&key("orders", "0", OperationType::Send)), &first[0]));
}

#[test]
fn families_of_partitions_interleaved_each_get_their_own_sets() {
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    let instruments =
        Instruments::new(&opentelemetry::metrics::MeterProvider::meter(&provider, "t"), MAX_ATTRIBUTE_SETS);
    let partitions: Vec<String> = (0..200).map(|p| p.to_string()).collect();
    // Two topics read partition by partition in turn, the same partition ids in both, each
    // topic also written without a partition, and one topic consumed by a second group on
    // another server: every key has its own set, found again rather than rebuilt.
    let keys = || {
        let mut keys = Vec::new();
        for p in &partitions {
            for topic in ["orders", "payments"] {
                keys.push(key(topic, p, OperationType::Process));
                keys.push(MetricKey { partition: None, ..key(topic, p, OperationType::Send) });
            }
            keys.push(MetricKey {
                group: Some("audit"),
                server: Some(("kafka-2", None)),
                ..key("orders", p, OperationType::Process)
            });
        }
        keys
    };
    let first: Vec<_> = keys().iter().map(|k| instruments.resolve(k)).collect();
    let second: Vec<_> = keys().iter().map(|k| instruments.resolve(k)).collect();
    for ((a, b), k) in first.iter().zip(&second).zip(keys()) {
        assert!(Arc::ptr_eq(a, b), "{k:?}: the set was rebuilt instead of found");
        assert_eq!(value(a, semconv::MESSAGING_DESTINATION_NAME).as_deref(), k.destination);
        assert_eq!(value(a, semconv::MESSAGING_DESTINATION_PARTITION_ID).as_deref(), k.partition);
        assert_eq!(value(a, semconv::MESSAGING_CONSUMER_GROUP_NAME).as_deref(), k.group);
        assert_eq!(value(a, semconv::SERVER_ADDRESS).as_deref(), k.server.map(|(s, _)| s));
    }
    // Per topic, one unpartitioned send set shared by every round, and 200 + 200 + 200
    // distinct process sets.
    let distinct: std::collections::HashSet<*const MetricSet> = first.iter().map(Arc::as_ptr).collect();
    assert_eq!(distinct.len(), 2 + 3 * partitions.len());
}

#[test]
fn more_sets_than_kept_are_still_right() {
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    let instruments =
        Instruments::new(&opentelemetry::metrics::MeterProvider::meter(&provider, "t"), MAX_ATTRIBUTE_SETS);
    let topics: Vec<String> = (0..cache::KEPT + 10).map(|t| format!("topic-{t}")).collect();
    for round in 0..2 {
        for topic in &topics {
            let set = instruments.resolve(&key(topic, "0", OperationType::Send));
            assert_eq!(
                value(&set, semconv::MESSAGING_DESTINATION_NAME).as_deref(),
                Some(topic.as_str()),
                "round {round}"
            );
        }
    }
}
