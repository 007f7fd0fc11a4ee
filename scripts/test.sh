#!/usr/bin/env bash
# The full test suite on real components: starts what is missing (broker, Redis, Keycloak,
# Docker; scripts/infra.sh, which runs scripts/setup.sh after saying what it lacks), installs
# the tests' npm packages, serves test repositories with `git daemon`, then runs every test of
# the workspace.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEST_GIT_PORT="${GITFAAS_TEST_GIT_PORT:-9419}"
# several checkouts may test at once on one machine: each picks its own git port (and root)
export GITFAAS_TEST_GIT_ROOT="${GITFAAS_TEST_GIT_ROOT:-$STATE_DIR/test-repos-$TEST_GIT_PORT}"
export GITFAAS_TEST_GIT_URL="git://127.0.0.1:$TEST_GIT_PORT"
export GITFAAS_TEST_KAFKA="127.0.0.1:${GITFAAS_KAFKA_PORT:-9092}"
export GITFAAS_TEST_KEYCLOAK="http://127.0.0.1:${GITFAAS_KEYCLOAK_PORT:-8180}"
export GITFAAS_TEST_REDIS="redis://127.0.0.1:${GITFAAS_REDIS_PORT:-6390}/"

"$ROOT/scripts/infra.sh" up
rm -rf "$GITFAAS_TEST_GIT_ROOT" && mkdir -p "$GITFAAS_TEST_GIT_ROOT"
stop_bg "test-git-daemon-$TEST_GIT_PORT"
pkill -f -- "git daemon .*--port=$TEST_GIT_PORT" 2>/dev/null || true
start_bg "test-git-daemon-$TEST_GIT_PORT" git daemon --reuseaddr --export-all --listen=127.0.0.1 --port="$TEST_GIT_PORT" \
  --base-path="$GITFAAS_TEST_GIT_ROOT" "$GITFAAS_TEST_GIT_ROOT"
# every topic this run creates carries its run tag (gitfaas_tests::unique); the run deletes
# them at its end, and a later run those of runs that died before theirs
export GITFAAS_TEST_RUN="${GITFAAS_TEST_RUN:-r$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')}"
RUNS_DIR="$STATE_DIR/test-runs" && mkdir -p "$RUNS_DIR" && echo $$ >"$RUNS_DIR/$GITFAAS_TEST_RUN"
sweep() { "$GITFAAS_BIN_DIR/sweep-topics" "$@" 2>&1 | tail -3 || true; }
finish() {
  stop_bg "test-git-daemon-$TEST_GIT_PORT"
  [[ -n "${GITFAAS_BIN_DIR:-}" ]] && sweep "$GITFAAS_TEST_RUN"
  rm -f "$RUNS_DIR/$GITFAAS_TEST_RUN"
}
trap finish EXIT
trap 'exit 130' INT TERM
wait_for "test git daemon on :$TEST_GIT_PORT" 30 bash -c "echo > /dev/tcp/127.0.0.1/$TEST_GIT_PORT"

cd "$ROOT"
# the fault tests run the service binaries as separate processes
cargo build --workspace --bins
GITFAAS_BIN_DIR="$(bin_dir dev)"
export GITFAAS_BIN_DIR
dead=()
for f in "$RUNS_DIR"/r*; do
  [[ -f "$f" && "$(basename "$f")" != "$GITFAAS_TEST_RUN" ]] || continue
  kill -0 "$(cat "$f")" 2>/dev/null || { dead+=("$(basename "$f")"); rm -f "$f"; }
done
say "sweeping test topics of finished runs (${#dead[@]} dead runs, and untagged ones)"
sweep --legacy "${dead[@]}"
npm_deps tests/oidc "the OpenID provider the tests start, npm oidc-provider"
npm_deps tests/web "the web app's browser test, npm playwright-core driving Debian's chromium"
# the whole output goes to a log too; when a test fails, its failure sections are printed
# again at the end, where a CI summary that keeps only the tail still shows them
TEST_LOG="$LOG_DIR/test-$(date -u +%Y%m%dT%H%M%SZ).log"
args=("$@")
(($#)) || args=(--workspace)   # e.g. scripts/test.sh -p gitfaas-tests --test auth
status=0
cargo test --no-fail-fast "${args[@]}" 2>&1 | tee "$TEST_LOG" || status=$?
if ((status)); then
  say "tests failed; full output in $TEST_LOG; the failures again:"
  # each failing test's captured output: from '---- name stdout ----' to the target's 'failures:' list
  awk '/^---- .* stdout ----$/ {on=1} /^failures:$/ && on {on=0} on' "$TEST_LOG" | tail -n 400 >&2
  grep -E '^test .* FAILED$|^error: .* target.* failed|^    `' "$TEST_LOG" >&2 || true
fi
exit "$status"
