#!/usr/bin/env bash
# The benchmark command: starts the local stack from a release build (scripts/stack.sh up),
# then measures it against its floors in one run (gitfaas-bench) and writes bench/results.json.
#   scripts/bench.sh [all|floors|cold|submit] [--runs N] [--out FILE]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export GITFAAS_PROFILE=release
# services of an earlier `stack.sh up` may be debug builds: start them again from release
stop_bg executor
stop_bg frontend
"$ROOT/scripts/stack.sh" up
(cd "$ROOT" && cargo build --release -p gitfaas-bench)
GITFAAS_BENCH_TOKEN="$("$ROOT/scripts/stack.sh" token alice)"
export GITFAAS_BENCH_TOKEN
cd "$ROOT" && "$CARGO_TARGET_DIR/release/gitfaas-bench" "$@"
