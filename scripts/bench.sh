#!/usr/bin/env bash
# The benchmark command: starts the local stack from a release build (scripts/stack.sh up),
# then measures it against its floors (gitfaas-bench) and writes bench/results.json (figures
# of parts not measured in this run are kept from the last one).
#   scripts/bench.sh [all|floors|cold|warm|first|burst|submit|wasm|state] [--runs N] [--burst N] [--clients 1,2,…] [--out FILE]
# `cold` runs against an executor with warm sandboxes off (every job a fresh container);
# `warm` and `submit` against executors with them on and GITFAAS_BENCH_SLOTS slots (default 8);
# `first` against the shipped executor (plus a package index on loopback for its dependency
# layer): first jobs of new commits, with and without a cached layer, and warm jobs with one.
# `wasm` against the shipped executor (its wasm runtime on): first jobs of new modules against
# `docker run`, later ones against the warm python job, instantiate + run from the executor's metrics.
# `state` against the shipped executor: a named function's job with 10 increments against the same
# job without state, ctx.state.get timed in the warm sandbox, increments/s of 8 clients.
# `burst` sweeps 1, 2, 4, 8, 16, 32 concurrent clients (--clients), --burst jobs per point
# (default 120), against each executor configuration of GITFAAS_BENCH_CONFIGS in turn
# (default "shipped tuned"), then measures the broker floor at the same client counts:
#   shipped   the executor as config/executor.yaml ships it (only its id, metrics address and
#             the loopback git server's allowed range are set, as scripts/stack.sh does)
#   tuned     shipped plus the GITFAAS__EXECUTOR__* settings of GITFAAS_BENCH_TUNED, e.g.
#             GITFAAS_BENCH_TUNED="GITFAAS__EXECUTOR__SLOTS=4 GITFAAS__EXECUTOR__PREFETCH=8" scripts/bench.sh burst
#             (an executor refuses settings it does not know: pass only those it has)
#   GITFAAS_BENCH_EXECUTORS=2 scripts/bench.sh burst   a second executor (executor-2, metrics on
#             127.0.0.1:9104) joins each configuration (its figures go under <config>_2_executors)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export GITFAAS_PROFILE=release
# a burst is more submissions than a user's default rate limit allows: the bench's caller gets
# a higher one (a per-caller policy, not a throughput setting)
export GITFAAS__FRONTEND__RATE_LIMIT__REQUESTS=1000000 GITFAAS__FRONTEND__RATE_LIMIT__MAX_UNFINISHED=1000000
# the executors get their settings from this script alone (`shipped` must be what ships)
for var in $(compgen -e | grep '^GITFAAS__EXECUTOR__' || true); do
  say "not passing $var to the executors (set the tuned configuration with GITFAAS_BENCH_TUNED)"
  unset "$var"
done
EXECUTORS="${GITFAAS_BENCH_EXECUTORS:-1}"
[[ "$EXECUTORS" == 1 || "$EXECUTORS" == 2 ]] || die "GITFAAS_BENCH_EXECUTORS is 1 or 2"
export GITFAAS_BENCH_EXECUTORS="$EXECUTORS"
# the cold, warm and submit parts: enough slots for their clients
PART_SETTINGS=("GITFAAS__EXECUTOR__SLOTS=${GITFAAS_BENCH_SLOTS:-8}")
# the sweep's tuned configuration; the default is what the other parts use, settable by
# GITFAAS_BENCH_TUNED (GITFAAS__EXECUTOR__* settings separated by spaces)
TUNED="${GITFAAS_BENCH_TUNED:-GITFAAS__EXECUTOR__SLOTS=8 GITFAAS__EXECUTOR__PREFETCH=8 GITFAAS__EXECUTOR__REF_FRESHNESS_MS=1000}"
read -ra TUNED_SETTINGS <<<"$TUNED"
for setting in "${TUNED_SETTINGS[@]}"; do
  [[ "$setting" =~ ^GITFAAS__EXECUTOR__[A-Z0-9_]+=[^[:space:]]*$ ]] ||
    die "GITFAAS_BENCH_TUNED: $setting is not a GITFAAS__EXECUTOR__KEY=VALUE setting"
  [[ "$setting" =~ ^GITFAAS__EXECUTOR__(ID|METRICS_LISTEN)= ]] && die "GITFAAS_BENCH_TUNED: the bench sets ${setting%%=*} itself"
done
read -ra CONFIGS <<<"${GITFAAS_BENCH_CONFIGS:-shipped tuned}"
WHAT="${1:-all}"
[[ $# -gt 0 ]] && shift
BIN="$CARGO_TARGET_DIR/release"

metrics_port() { [[ "$1" == executor-1 ]] && echo 9101 || echo 9104; }

# start_executor NAME ID [GITFAAS__EXECUTOR__KEY=VALUE…]: an executor with stack.sh's
# settings (id, metrics address, loopback git server) and these over config/executor.yaml
start_executor() {
  local name="$1" id="$2"; shift 2
  stop_bg "$name"
  GITFAAS_CONFIG_DIR="$ROOT/config" start_bg "$name" env GITFAAS__EXECUTOR__POLICY__ALLOWED_RANGES=127.0.0.0/8,::1 \
    GITFAAS__EXECUTOR__ID="$id" GITFAAS__EXECUTOR__METRICS_LISTEN="127.0.0.1:$(metrics_port "$id")" \
    "$@" "$BIN/gitfaas-executor"
}

# wait_ready NAME ID: until the executor has partitions of the jobs topic (its readiness)
wait_ready() {
  for _ in $(seq 60); do
    curl -fsS "http://127.0.0.1:$(metrics_port "$2")/health/ready" >/dev/null 2>&1 && return 0
    is_running "$1" || break
    sleep 1
  done
  sed '/[Bb]acktrace/q' "$LOG_DIR/$1.log" | tail -15 >&2 # the error, not the stack trace
  die "$1 did not become ready (log: $LOG_DIR/$1.log)"
}

# start_executors [GITFAAS__EXECUTOR__KEY=VALUE…]: executor-1 (and executor-2), ready
start_executors() {
  stop_bg executor-2
  start_executor executor executor-1 "$@"
  [[ "$EXECUTORS" == 2 ]] && start_executor executor-2 executor-2 "$@"
  wait_ready executor executor-1
  [[ "$EXECUTORS" == 2 ]] && wait_ready executor-2 executor-2
  sleep 2 # the group settles (a second member's rebalance) before jobs arrive
}

# bench PART ARGS…: gitfaas-bench with a fresh token (they live 15 minutes)
bench() {
  local token
  token="$("$ROOT/scripts/stack.sh" token alice)"
  (cd "$ROOT" && GITFAAS_BENCH_TOKEN="$token" "$BIN/gitfaas-bench" "$@")
}

# slots_of SETTING…: the slots per executor those settings give (else config/executor.yaml's)
slots_of() {
  local setting slots
  slots=$(sed -n 's/^  slots: *\([0-9][0-9]*\).*/\1/p' "$ROOT/config/executor.yaml" | head -1)
  for setting in "$@"; do [[ "$setting" == GITFAAS__EXECUTOR__SLOTS=* ]] && slots="${setting#*=}"; done
  echo "${slots:-2}"
}

# the sweep against each configuration, then the broker floor
burst() {
  local config metrics="127.0.0.1:9101" settings
  [[ "$EXECUTORS" == 2 ]] && metrics+=",127.0.0.1:9104"
  for config in "${CONFIGS[@]}"; do
    case "$config" in
      shipped) settings=() ;;
      tuned) settings=("${TUNED_SETTINGS[@]}") ;;
      *) die "GITFAAS_BENCH_CONFIGS: shipped and/or tuned, not $config" ;;
    esac
    say "burst sweep against the $config executor configuration: ${settings[*]:-as shipped}"
    start_executors "${settings[@]}"
    bench burst --config "$config" --executor-env "${settings[*]}" --executors "$EXECUTORS" \
      --slots "$(slots_of "${settings[@]}")" --metrics "$metrics" --run-dir "$RUN_DIR" "$@" || return
  done
  bench broker-floor "$@"
}

# first jobs: a package index on loopback (pypiserver, from setup.sh's venv) serving a wheel of
# a generated module, the shipped executor pointed at it, then the part itself
first() {
  local index="$STATE_DIR/bench-index" port="${GITFAAS_BENCH_INDEX_PORT:-9431}"
  rm -rf "$index" && mkdir -p "$index/packages"
  python3 -c 'for i in range(1500): print(f"def f{i}(x):\n    return [x * {i} for _ in range(3)]\n")' >"$index/benchdep.py"
  python3 "$ROOT/tests/deps/dists.py" wheel "$index/packages" benchdep 1.0 "$(cat "$index/benchdep.py")"
  stop_bg bench-index
  start_bg bench-index "$STATE_DIR/venv-pypiserver/bin/pypi-server" run -i 127.0.0.1 -p "$port" -a . -P . \
    --disable-fallback "$index/packages"
  wait_for "bench package index on :$port" 30 bash -c "echo > /dev/tcp/127.0.0.1/$port"
  start_executors GITFAAS__EXECUTOR__DEPENDENCIES__PIP_INDEX="http://127.0.0.1:$port/simple/"
  local status=0
  bench first --repos-dir "$STATE_DIR/repos" --git-url "git://127.0.0.1:${GITFAAS_GIT_PORT:-9418}" \
    --module "$index/benchdep.py" "$@" || status=$?
  stop_bg bench-index
  return "$status"
}

# run_part PART ARGS…
run_part() {
  local part="$1"; shift
  case "$part" in
    floors) bench floors "$@" ;;
    cold) start_executors "${PART_SETTINGS[@]}" GITFAAS__EXECUTOR__WARM__ENABLED=false; bench cold "$@" ;;
    warm | submit) start_executors "${PART_SETTINGS[@]}"; bench "$part" "$@" ;;
    first) first "$@" ;;
    wasm) start_executors "${PART_SETTINGS[@]}"
      bench wasm --repos-dir "$STATE_DIR/repos" --git-url "git://127.0.0.1:${GITFAAS_GIT_PORT:-9418}" "$@" ;;
    state) start_executors "${PART_SETTINGS[@]}"
      bench state --repos-dir "$STATE_DIR/repos" --git-url "git://127.0.0.1:${GITFAAS_GIT_PORT:-9418}" "$@" ;;
    burst) burst "$@" ;;
    *) die "what to measure: all | floors | cold | warm | first | burst | submit | wasm | state" ;;
  esac
}

# the stack's executor again as scripts/stack.sh starts it, however the bench ends
restore() {
  # the bench's executor log stays for a look at its stages (a restart overwrites executor.log)
  cp -f "$LOG_DIR/executor.log" "$LOG_DIR/executor-bench.log" 2>/dev/null || true
  stop_bg executor-2
  start_executor executor executor-1
}

# services of an earlier `stack.sh up` may be debug builds: start them again from release
stop_bg executor
stop_bg executor-2
stop_bg frontend
"$ROOT/scripts/stack.sh" up
(cd "$ROOT" && cargo build --release -p gitfaas-bench)
trap restore EXIT
parts=("$WHAT")
[[ "$WHAT" == all ]] && parts=(cold warm first wasm state submit burst)
for part in "${parts[@]}"; do
  run_part "$part" "$@"
done
