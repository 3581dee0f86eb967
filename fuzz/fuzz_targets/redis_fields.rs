//! Redis stream entries with arbitrary field names and values of any RESP type, read through
//! `StreamFieldsExtractor` and a process span. Properties: no panic; only string-like UTF-8
//! values are read.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use opentelemetry::{Context, propagation::Extractor};
use otel_messaging_redis::StreamFieldsExtractor;
use redis::Value;

#[derive(Debug, Arbitrary)]
enum Field {
    Bulk(Vec<u8>),
    Simple(String),
    Int(i64),
    Nil,
    Array(Vec<Vec<u8>>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    fields: Vec<(String, Field)>,
    probe: String,
    trust_boundary: bool,
}

fuzz_target!(|input: Input| {
    let map: HashMap<String, Value> = input
        .fields
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Field::Bulk(b) => Value::BulkString(b),
                Field::Simple(s) => Value::SimpleString(s),
                Field::Int(i) => Value::Int(i),
                Field::Nil => Value::Nil,
                Field::Array(items) => Value::Array(items.into_iter().map(Value::BulkString).collect()),
            };
            (k, v)
        })
        .collect();
    let extractor = StreamFieldsExtractor(&map);
    let _ = extractor.get(&input.probe);
    let _ = extractor.keys();
    let operation = otel_messaging_fuzz::instrumenter(input.trust_boundary)
        .operation(&otel_messaging_fuzz::Process("redis"))
        .with_parent(&Context::new())
        .with_delivered_message(&extractor)
        .start();
    operation.end_ok();
});
