#!/usr/bin/env python3
"""Asserts the waterfall `just demo` prints (the quickstart example): one trace of four spans —
the request (SERVER), its send (PRODUCER), the process span (CONSUMER) drawn after the queue gap
with a queue wait above zero, and the handler's INSERT (CLIENT) — nested in that order.

Reads the demo's output on standard input; exits non-zero saying what is missing.
`--self-test` checks that this checker fails on broken waterfalls (and passes the good one).
"""
import re
import sys

GOOD = """Kafka at 127.0.0.1:46703
trace 54df49456ec40a71b2f5a492f00c6af8  (4 spans, 1017.5 ms)
POST /orders         |██                                              |      0.0 ms     51.9 ms  SERVER
  send orders        |██                                              |      0.1 ms     51.8 ms  PRODUCER
    process orders   |  ·············································█|   1001.0 ms     16.5 ms  CONSUMER  queue wait 949.2 ms
      INSERT orders  |                                               █|   1001.1 ms     16.3 ms  CLIENT
4 spans in 1 trace(s)
"""

EXPECTED = [(0, "POST /orders", "SERVER"), (2, "send orders", "PRODUCER"),
            (4, "process orders", "CONSUMER"), (6, "INSERT orders", "CLIENT")]


def problems(text: str) -> list[str]:
    found = []
    if "4 spans in 1 trace(s)" not in text:
        found.append("not one trace of 4 spans")
    rows = [l for l in text.splitlines() if "|" in l]
    if len(rows) != len(EXPECTED):
        found.append(f"{len(rows)} waterfall rows, expected {len(EXPECTED)}")
    for row, (indent, name, kind) in zip(rows, EXPECTED):
        label = row.split("|")[0]
        if not label.startswith(" " * indent + name) or label.startswith(" " * (indent + 1)):
            found.append(f"{name!r} not nested at depth {indent // 2}: {row!r}")
        if not re.search(rf"\b{kind}\b", row):
            found.append(f"{name!r} is not {kind}: {row!r}")
    process = next((r for r in rows if "process orders" in r), "")
    wait = re.search(r"queue wait ([0-9.]+) ms", process)
    if not wait or float(wait.group(1)) <= 0:
        found.append(f"no queue wait on the process span: {process!r}")
    if "·" not in process:
        found.append("the queue gap is not drawn")
    return found


def self_test() -> None:
    assert problems(GOOD) == [], problems(GOOD)
    broken = {
        "two traces": GOOD.replace("4 spans in 1 trace(s)", "4 spans in 2 trace(s)"),
        "process not nested": GOOD.replace("    process orders", "process orders    "),
        "wrong kind": GOOD.replace("CONSUMER", "INTERNAL"),
        "no queue wait": GOOD.replace("queue wait 949.2 ms", ""),
        "a span missing": "\n".join(l for l in GOOD.splitlines() if "INSERT" not in l),
    }
    for what, text in broken.items():
        assert problems(text), f"not caught: {what}"
    print("check_demo self-test: 6 passed, 0 failed")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        sys.exit(0)
    text = sys.stdin.read()
    sys.stdout.write(text)
    found = problems(text)
    if found:
        print("demo waterfall: " + "; ".join(found), file=sys.stderr)
        sys.exit(1)
    print("demo: one trace, the queue gap drawn")
