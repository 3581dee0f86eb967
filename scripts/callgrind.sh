# Shared by scripts/bench_instructions.sh and scripts/throughput_instructions.sh (sourced).

# bench_binary PACKAGE BENCH: builds that bench target and prints its executable's path (from
# cargo's own report: two packages have a bench named `throughput`).
bench_binary() {
  cargo bench -p "$1" --bench "$2" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$2" | tail -1
}

# instructions COMMAND...: the instructions valgrind's callgrind counts for COMMAND, all its
# threads (set the command's environment in a subshell around the call).
instructions() {
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
  rm -f "$out"
}
