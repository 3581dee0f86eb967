//! The READMEs say what the code does: each "What is emitted" table equals the conformance table
//! the tests check spans against (`integration_tests::conformance_table::markdown`), and the
//! "One API shape" table is the same in the workspace README and in every crate README; the interop
//! matrix is the table the interop tests assert (`integration_tests::interop::CASES`).
//!
//! No broker needed. `BLESS=1 cargo test -p integration-tests --test readme` rewrites the marked
//! blocks from their sources (the conformance table; the workspace README's API-shape block).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use integration_tests::conformance_table::markdown;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

const CRATES: [(&str, &str); 5] = [
    ("kafka", "crates/otel-messaging-rdkafka/README.md"),
    ("rabbitmq", "crates/otel-messaging-lapin/README.md"),
    ("aws_sqs", "crates/otel-messaging-aws-sqs/README.md"),
    ("aws.sns", "crates/otel-messaging-aws-sns/README.md"),
    ("redis", "crates/otel-messaging-redis/README.md"),
];

/// The NATS crate (its README carries both tables too).
const NATS: (&str, &str) = ("nats", "crates/otel-messaging-async-nats/README.md");

/// The byte range of the text between `<!-- {marker} -->` and `<!-- /{marker} -->` (without
/// the marker lines).
fn range(text: &str, marker: &str) -> Option<std::ops::Range<usize>> {
    let open = format!("<!-- {marker} -->\n");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("<!-- /{marker} -->"))?;
    Some(start..end)
}

fn block<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    range(text, marker).map(|r| &text[r])
}

/// Checks (or with `BLESS=1` rewrites) block `marker` of the file at `path` against `expected`.
fn check(path: &str, marker: &str, expected: &str, problems: &mut Vec<String>) {
    let file = root().join(path);
    let text = std::fs::read_to_string(&file).expect("readable README");
    match range(&text, marker) {
        None => problems.push(format!("{path}: no `<!-- {marker} -->` … `<!-- /{marker} -->` block")),
        Some(r) if text[r.clone()] == *expected => {}
        // Never under CI: a leaked BLESS would turn every drift check green.
        Some(r) if std::env::var_os("BLESS").is_some() && std::env::var_os("CI").is_none() => {
            let mut blessed = text.clone();
            blessed.replace_range(r, expected);
            std::fs::write(&file, blessed).expect("writable README");
        }
        Some(_) => problems.push(format!(
            "{path}: block `{marker}` differs from its source (BLESS=1 rewrites it); expected:\n{expected}"
        )),
    }
}

#[test]
fn what_is_emitted_tables_are_the_conformance_table() {
    let mut problems = Vec::new();
    for (system, readme) in CRATES.into_iter().chain([NATS]) {
        let table = markdown(system);
        let marker = format!("conformance:{system}");
        check("README.md", &marker, &table, &mut problems);
        check(readme, &marker, &table, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn every_readme_shows_the_same_api_shape() {
    let workspace = std::fs::read_to_string(root().join("README.md")).expect("README");
    let shape = block(&workspace, "api-shape").expect("the workspace README's api-shape block").to_owned();
    assert!(shape.contains("| send |"), "the block holds the table");
    let mut problems = Vec::new();
    for (_, readme) in CRATES {
        check(readme, "api-shape", &shape, &mut problems);
    }
    check("crates/otel-messaging/README.md", "api-shape", &shape, &mut problems);
    check(NATS.1, "api-shape", &shape, &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn the_interop_matrix_is_what_the_interop_tests_assert() {
    let mut problems = Vec::new();
    check("README.md", "interop-matrix", &integration_tests::interop::markdown(), &mut problems);
    check("interop/README.md", "interop-matrix", &integration_tests::interop::markdown(), &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
