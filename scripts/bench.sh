#!/usr/bin/env bash
# The benchmark command: starts the local stack from a release build (scripts/stack.sh up),
# then measures it against its floors in one run (gitfaas-bench) and writes bench/results.json
# (figures of parts not measured in this run are kept from the last one).
#   scripts/bench.sh [all|floors|cold|warm|burst|submit] [--runs N] [--burst N] [--clients N] [--out FILE]
#   GITFAAS_BENCH_EXECUTORS=2 scripts/bench.sh burst   a second executor (executor-2) joins for the run
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export GITFAAS_PROFILE=release
# the bench's own stack: a burst is more submissions than a user's default rate limit allows,
# and each executor gets enough slots for the burst's clients (GITFAAS_BENCH_SLOTS, default 8)
export GITFAAS__FRONTEND__RATE_LIMIT__REQUESTS=1000000
export GITFAAS__EXECUTOR__SLOTS="${GITFAAS_BENCH_SLOTS:-8}"
EXECUTORS="${GITFAAS_BENCH_EXECUTORS:-1}"
export GITFAAS_BENCH_EXECUTORS="$EXECUTORS"
# services of an earlier `stack.sh up` may be debug builds: start them again from release
stop_bg executor
stop_bg executor-2
stop_bg frontend
"$ROOT/scripts/stack.sh" up
if [[ "$EXECUTORS" == 2 ]]; then
  # the same settings as stack.sh's executor, another id (its own orphan label)
  GITFAAS_CONFIG_DIR="$ROOT/config" GITFAAS__EXECUTOR__POLICY__ALLOWED_RANGES=127.0.0.0/8,::1 \
    GITFAAS__EXECUTOR__ID=executor-2 start_bg executor-2 "$CARGO_TARGET_DIR/release/gitfaas-executor"
  sleep 8 # the group rebalances onto both before jobs arrive
fi
(cd "$ROOT" && cargo build --release -p gitfaas-bench)
GITFAAS_BENCH_TOKEN="$("$ROOT/scripts/stack.sh" token alice)"
export GITFAAS_BENCH_TOKEN
status=0
(cd "$ROOT" && "$CARGO_TARGET_DIR/release/gitfaas-bench" "$@") || status=$?
[[ "$EXECUTORS" == 2 ]] && stop_bg executor-2
exit "$status"
