//! AMQP `headers` tables with arbitrary keys and value types (strings, byte arrays, numbers,
//! timestamps, nested tables), read through `FieldTableExtractor` and a process span.
//! Properties: no panic; only string-like UTF-8 values are read; the exact key wins.
#![no_main]

use arbitrary::Arbitrary;
use lapin::types::{AMQPValue, ByteArray, FieldTable, LongString, ShortString};
use libfuzzer_sys::fuzz_target;
use opentelemetry::{Context, propagation::Extractor};
use otel_messaging_lapin::FieldTableExtractor;

#[derive(Debug, Arbitrary)]
enum Value {
    Long(Vec<u8>),
    Short(String),
    Bytes(Vec<u8>),
    Int(i32),
    LongLong(i64),
    Timestamp(u64),
    Bool(bool),
    Void,
    Table(Vec<(String, String)>),
}

impl Value {
    fn amqp(self) -> AMQPValue {
        match self {
            Value::Long(b) => AMQPValue::LongString(LongString::from(b)),
            Value::Short(s) => AMQPValue::ShortString(short(s)),
            Value::Bytes(b) => AMQPValue::ByteArray(ByteArray::from(b)),
            Value::Int(v) => AMQPValue::LongInt(v),
            Value::LongLong(v) => AMQPValue::LongLongInt(v),
            Value::Timestamp(v) => AMQPValue::Timestamp(v),
            Value::Bool(v) => AMQPValue::Boolean(v),
            Value::Void => AMQPValue::Void,
            Value::Table(entries) => {
                let mut table = FieldTable::default();
                for (k, v) in entries {
                    table.insert(short(k), AMQPValue::LongString(LongString::from(v)));
                }
                AMQPValue::FieldTable(table)
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    entries: Vec<(String, Value)>,
    probe: String,
    trust_boundary: bool,
}

fuzz_target!(|input: Input| {
    let mut table = FieldTable::default();
    for (k, v) in input.entries {
        table.insert(short(k), v.amqp());
    }
    let extractor = FieldTableExtractor(&table);
    if let Some(value) = extractor.get(&input.probe) {
        let exact = table.inner().get(input.probe.as_str());
        let readable = |v: &AMQPValue| {
            matches!(v, AMQPValue::LongString(_) | AMQPValue::ShortString(_) | AMQPValue::ByteArray(_))
        };
        assert!(exact.is_none_or(|v| !readable(v) || value.len() <= v_len(v)));
    }
    let _ = extractor.keys();
    let operation = otel_messaging_fuzz::instrumenter(input.trust_boundary)
        .operation(&otel_messaging_fuzz::Process("rabbitmq"))
        .with_parent(&Context::new())
        .with_delivered_message(&extractor)
        .start();
    operation.end_ok();
});

/// An AMQP short string holds at most 255 bytes (lapin panics on longer ones): cut on a char
/// boundary, as a broker would never deliver a longer one.
fn short(mut s: String) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    ShortString::from(s)
}

fn v_len(v: &AMQPValue) -> usize {
    match v {
        AMQPValue::LongString(s) => s.as_bytes().len(),
        AMQPValue::ShortString(s) => s.as_str().len(),
        AMQPValue::ByteArray(b) => b.as_slice().len(),
        _ => 0,
    }
}
