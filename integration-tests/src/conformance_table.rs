//! The crate READMEs' "What is emitted" tables, generated from the conformance table the tests
//! check every span against (`otel_messaging::testing::conformance`). README-generation plumbing:
//! it lives here, unpublished, not in the published `testing` API.

use otel_messaging::testing::conformance::{Check, Level, operations, rows};

/// The "What is emitted" table of `system` in Markdown: one row per attribute, one column per
/// operation type, each cell the requirement level (R = Required, CR = Conditionally Required,
/// Rec = Recommended, Opt = Opt-In) and whether we emit it (✓ always, ~ when known / applicable,
/// ✗ not emitted), followed by the notes. The crate READMEs carry these tables; a test keeps them
/// equal.
pub fn markdown(system: &str) -> String {
    let operations = operations(system);
    let mut keys: Vec<&'static str> = Vec::new();
    for op in operations {
        for row in rows(system, op) {
            if !keys.contains(&row.key) {
                keys.push(row.key);
            }
        }
    }
    let mut out = String::new();
    out.push_str("| Attribute |");
    for op in operations {
        out.push_str(&format!(" {op} |"));
    }
    out.push_str(" What we emit |\n|---|");
    for _ in operations {
        out.push_str("---|");
    }
    out.push_str("---|\n");
    for key in keys {
        out.push_str(&format!("| `{key}` |"));
        let mut note = "";
        for op in operations {
            let cell = rows(system, op).into_iter().find(|r| r.key == key).map_or("".to_owned(), |r| {
                note = r.note;
                let level = match r.level {
                    Level::Required => "R",
                    Level::ConditionallyRequired(_) => "CR",
                    Level::Recommended(_) => "Rec",
                    Level::OptIn => "Opt",
                };
                let emitted = if r.never_emitted() {
                    "✗"
                } else if matches!(r.check, Check::Present) {
                    "✓"
                } else {
                    "~"
                };
                format!("{level} {emitted}")
            });
            out.push_str(&format!(" {cell} |"));
        }
        out.push_str(&format!(" {note} |\n"));
    }
    out
}
