//! The Weaver registry in `model/` (issue "spec-exact and bounded", point 7) declares exactly the
//! `otel_messaging.*` names the crates emit: every such string literal in `crates/*/src` is an
//! attribute or a metric of the registry, and the registry declares nothing the code does not
//! emit. Semantic-convention names are not checked here (the conformance table does that).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Every file under `dir` whose name ends with `suffix`, recursively.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(files(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found
}

/// The `"otel_messaging.…"` string literals of `source`.
fn literals(source: &str) -> BTreeSet<String> {
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.starts_with("otel_messaging.")
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        })
        .map(str::to_owned)
        .collect()
}

/// What a registry file declares: attribute ids and metric names in the project's namespace, and
/// the project attributes its metrics refer to.
#[derive(Default, Debug)]
struct Declared {
    attributes: BTreeSet<String>,
    metrics: BTreeSet<String>,
    references: BTreeSet<String>,
}

fn declared(yaml: &str, into: &mut Declared) {
    for line in yaml.lines() {
        let line = line.trim().trim_start_matches("- ");
        let value = |key: &str| line.strip_prefix(key).map(|v| v.trim().trim_matches('"').to_owned());
        if let Some(id) = value("id:").filter(|id| id.starts_with("otel_messaging.")) {
            into.attributes.insert(id);
        } else if let Some(name) = value("metric_name:") {
            into.metrics.insert(name);
        } else if let Some(name) = value("ref:").filter(|name| name.starts_with("otel_messaging.")) {
            into.references.insert(name);
        }
    }
}

/// The differences between the code's names and the registry: (emitted but not declared,
/// declared but not emitted, referred to but not declared as an attribute).
fn differences(code: &BTreeSet<String>, registry: &Declared) -> (Vec<String>, Vec<String>, Vec<String>) {
    let declared: BTreeSet<String> = registry.attributes.union(&registry.metrics).cloned().collect();
    (
        code.difference(&declared).cloned().collect(),
        declared.difference(code).cloned().collect(),
        registry.references.difference(&registry.attributes).cloned().collect(),
    )
}

fn registry() -> Declared {
    let mut registry = Declared::default();
    let model = root().join("model");
    assert!(model.join("registry_manifest.yaml").is_file(), "model/registry_manifest.yaml is missing");
    for file in files(&model.join("otel_messaging"), ".yaml") {
        declared(&std::fs::read_to_string(&file).expect("readable"), &mut registry);
    }
    registry
}

fn code_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in
        files(&root().join("crates"), ".rs").iter().filter(|f| f.components().any(|c| c.as_os_str() == "src"))
    {
        names.extend(literals(&std::fs::read_to_string(file).expect("readable")));
    }
    names
}

#[test]
fn the_registry_declares_exactly_the_names_the_crates_emit() {
    let code = code_names();
    let registry = registry();
    assert!(code.len() >= 20, "too few names found in the code: {code:?}");
    let (undeclared, unused, dangling) = differences(&code, &registry);
    assert!(undeclared.is_empty(), "emitted but not in model/: {undeclared:?}");
    assert!(unused.is_empty(), "in model/ but not emitted by any crate: {unused:?}");
    assert!(dangling.is_empty(), "metrics refer to undeclared attributes: {dangling:?}");
}

/// The checker itself: a name missing on either side, and a reference to nothing, are found.
#[test]
fn the_registry_check_finds_each_kind_of_difference() {
    let code: BTreeSet<String> = ["otel_messaging.a", "otel_messaging.b"].map(String::from).into();
    let mut registry = Declared::default();
    declared(
        "groups:\n  - id: registry.otel_messaging\n    attributes:\n      - id: otel_messaging.a\n\
         \x20 - id: metric.otel_messaging.c\n    metric_name: otel_messaging.c\n    attributes:\n\
         \x20     - ref: messaging.system\n      - ref: otel_messaging.d\n",
        &mut registry,
    );
    assert_eq!(
        differences(&code, &registry),
        (vec!["otel_messaging.b".into()], vec!["otel_messaging.c".into()], vec!["otel_messaging.d".into()])
    );
    assert_eq!(
        literals(r#"const A: &str = "otel_messaging.x.y"; // "otel_messaging.{name}" is not a name"#),
        BTreeSet::from(["otel_messaging.x.y".to_owned()])
    );
}
