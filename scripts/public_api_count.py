#!/usr/bin/env python3
"""Counts the public API items of each workspace crate from rustdoc's JSON output.

    scripts/public_api_count.py [--target-dir DIR] [CRATE...]

Builds `cargo +nightly rustdoc -p CRATE --all-features --lib -- -Z unstable-options
--output-format json` (what docs.rs shows: every crate sets `all-features`), then walks the crate
from its root module and counts, once each, what a user can name:

* every public module, struct, enum, union, trait, function, constant, static, type alias and
  macro;
* the public methods and associated constants and types of the crate's own types' inherent
  impls, and the items of its own traits (trait-impl methods — `Clone::clone`, `Debug::fmt` —
  and blanket or auto-trait impls are not new surface and are left out);
* a re-export of another crate's item (`pub use otel_messaging::ProcessParent`) as one item,
  without its methods (they are counted in the crate that defines them).

Enum variants and struct fields are not counted. `#[doc(hidden)]` items are not in the JSON and
so are not counted unless `--hidden` is given (they are public all the same: a user can name them
and semver covers them). Prints one line per crate and the total; `--list` also prints each
counted item's path, before its crate's line.
"""

import argparse
import json
import os
import subprocess
import sys

CRATES = [
    "otel-messaging",
    "otel-messaging-rdkafka",
    "otel-messaging-lapin",
    "otel-messaging-aws-sqs",
    "otel-messaging-aws-sns",
    "otel-messaging-redis",
    "otel-messaging-async-nats",
]

COUNTED = {"module", "struct", "enum", "union", "trait", "function", "constant", "static",
           "type_alias", "macro", "proc_macro", "trait_alias"}


def kind_of(item):
    inner = item.get("inner")
    if isinstance(inner, dict) and inner:
        return next(iter(inner))
    return str(inner)


def count(doc, names=None):
    """Counts what a user can name in `doc`; appends each counted item's path to `names` if given."""
    index = doc["index"]
    seen = set()
    total = {"items": 0, "methods": 0, "reexports": 0}

    def note(path):
        if names is not None:
            names.append(path)

    def impl_items(impl_ids, owner):
        n = 0
        for impl_id in impl_ids:
            impl_item = index.get(str(impl_id))
            if impl_item is None:
                continue
            impl = impl_item["inner"].get("impl", {})
            if impl.get("trait") is not None or impl.get("blanket_impl") is not None:
                continue
            if impl.get("is_synthetic") or impl.get("synthetic"):
                continue
            for member in impl.get("items", []):
                m = index.get(str(member))
                if m is not None and m.get("visibility") == "public" and str(member) not in seen:
                    seen.add(str(member))
                    note(f"{owner}::{m.get('name')}")
                    n += 1
        return n

    def visit(item_id, prefix=""):
        key = str(item_id)
        if key in seen:
            return
        item = index.get(key)
        if item is None:
            return
        kind = kind_of(item)
        if kind == "use":
            use = item["inner"]["use"]
            target = use.get("id")
            if target is not None and str(target) in index and index[str(target)].get("crate_id") == 0:
                seen.add(key)
                visit(target, prefix)
            else:
                seen.add(key)
                note(f"{prefix}{use.get('name')} (re-export of {use.get('source')})")
                total["reexports"] += 1
            return
        if item.get("crate_id") != 0:
            return
        seen.add(key)
        if kind not in COUNTED:
            return
        total["items"] += 1
        inner = item["inner"][kind]
        path = f"{prefix}{item.get('name')}"
        note(f"{path} ({kind})")
        if kind == "module":
            child_prefix = "" if item_id == doc["root"] else f"{path}::"
            for child in inner.get("items", []):
                visit(child, child_prefix)
        elif kind in ("struct", "enum", "union"):
            total["methods"] += impl_items(inner.get("impls", []), path)
        elif kind == "trait":
            for member in inner.get("items", []):
                if str(member) not in seen:
                    seen.add(str(member))
                    note(f"{path}::{index.get(str(member), {}).get('name')}")
                    total["methods"] += 1

    visit(doc["root"])
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    parser.add_argument("--hidden", action="store_true",
                        help="count #[doc(hidden)] items too (public all the same: semver covers them)")
    parser.add_argument("--list", action="store_true", help="print every counted item's path too")
    parser.add_argument("crates", nargs="*", default=CRATES)
    args = parser.parse_args()
    env = dict(os.environ, CARGO_TARGET_DIR=args.target_dir, RUSTDOCFLAGS="")
    grand = 0
    for crate in args.crates:
        subprocess.run(
            ["cargo", "+nightly", "rustdoc", "-q", "-p", crate, "--all-features", "--lib", "--",
             "-Z", "unstable-options", "--output-format", "json"]
            + (["--document-hidden-items"] if args.hidden else []),
            check=True, env=env)
        path = os.path.join(args.target_dir, "doc", crate.replace("-", "_") + ".json")
        with open(path) as f:
            doc = json.load(f)
        names = [] if args.list else None
        t = count(doc, names)
        n = t["items"] + t["methods"] + t["reexports"]
        for name in names or []:
            print(f"  {name}")
        grand += n
        print(f"{crate:28} {n:4}  (items {t['items']}, methods {t['methods']}, re-exports {t['reexports']})")
    print(f"{'total':28} {grand:4}")


if __name__ == "__main__":
    sys.exit(main())
