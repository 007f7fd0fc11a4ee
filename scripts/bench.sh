#!/usr/bin/env bash
# The benchmark command: starts the local stack from a release build (scripts/stack.sh up),
# then measures it against its floors (gitfaas-bench) and writes bench/results.json (figures
# of parts not measured in this run are kept from the last one).
#   scripts/bench.sh [all|floors|cold|warm|burst|submit] [--runs N] [--burst N] [--clients N] [--out FILE]
#   GITFAAS_BENCH_EXECUTORS=2 scripts/bench.sh burst   a second executor (executor-2) joins the burst
# `cold` runs against an executor with warm sandboxes off (every job a fresh container), the
# other parts against executors with them on (the default).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export GITFAAS_PROFILE=release
# the bench's own stack: a burst is more submissions than a user's default rate limit allows,
# and each executor gets enough slots for the burst's clients (GITFAAS_BENCH_SLOTS, default 8)
export GITFAAS__FRONTEND__RATE_LIMIT__REQUESTS=1000000
export GITFAAS__EXECUTOR__SLOTS="${GITFAAS_BENCH_SLOTS:-8}"
EXECUTORS="${GITFAAS_BENCH_EXECUTORS:-1}"
export GITFAAS_BENCH_EXECUTORS="$EXECUTORS"
WHAT="${1:-all}"
[[ $# -gt 0 ]] && shift
BIN="$CARGO_TARGET_DIR/release"

# start_executor NAME ID WARM: an executor with stack.sh's settings, warm sandboxes on or off
start_executor() {
  stop_bg "$1"
  GITFAAS_CONFIG_DIR="$ROOT/config" GITFAAS__EXECUTOR__POLICY__ALLOWED_RANGES=127.0.0.0/8,::1 \
    GITFAAS__EXECUTOR__ID="$2" GITFAAS__EXECUTOR__WARM__ENABLED="$3" \
    GITFAAS__EXECUTOR__METRICS_LISTEN="127.0.0.1:$([[ "$2" == executor-1 ]] && echo 9101 || echo 0)" \
    start_bg "$1" "$BIN/gitfaas-executor"
}

# services of an earlier `stack.sh up` may be debug builds: start them again from release
stop_bg executor
stop_bg executor-2
stop_bg frontend
"$ROOT/scripts/stack.sh" up
(cd "$ROOT" && cargo build --release -p gitfaas-bench)
GITFAAS_BENCH_TOKEN="$("$ROOT/scripts/stack.sh" token alice)"
export GITFAAS_BENCH_TOKEN
status=0
if [[ "$WHAT" == all || "$WHAT" == cold ]]; then
  start_executor executor executor-1 false
  sleep 8 # the group rebalances onto it before jobs arrive
  (cd "$ROOT" && "$BIN/gitfaas-bench" cold "$@") || status=$?
fi
if [[ "$WHAT" != cold && "$status" == 0 ]]; then
  start_executor executor executor-1 true
  [[ "$EXECUTORS" == 2 ]] && start_executor executor-2 executor-2 true
  sleep 8
  parts=("$WHAT")
  [[ "$WHAT" == all ]] && parts=(warm burst submit)
  for part in "${parts[@]}"; do
    (cd "$ROOT" && "$BIN/gitfaas-bench" "$part" "$@") || { status=$?; break; }
  done
fi
stop_bg executor-2
exit "$status"
