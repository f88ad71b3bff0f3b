#!/usr/bin/env bash
# `make test` (and CI through .ci/run): every check of the repository, in
# order, stopping at the first failure.
#
#   scripts/test.sh              all suites
#   scripts/test.sh rust_tests   only the suites named (see SUITES below)
#   TEST_ARGS='-p inventiv-api -- --nocapture' scripts/test.sh rust_tests
#
# Database and Redis: DATABASE_URL / REDIS_URL from the environment when set,
# else a private PostgreSQL + Redis in ${INVENTIV_TEST_STATE_DIR:-.local/test},
# apart from the data of `make run`, stopped again at the end. .env is NOT
# read: tests see the same configuration on every machine.
set -euo pipefail

LOG_TAG="test"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
export INVENTIV_SKIP_DOTENV=1

TEST_STATE_DIR=$(abs_path "${INVENTIV_TEST_STATE_DIR:-.local/test}")
SERVICES_READY=0
STARTED_SERVICES=""
STEP=0
T0=$SECONDS

cleanup() {
  local rc=$?
  trap '' INT TERM
  trap - EXIT
  set +e
  if [[ -n $STARTED_SERVICES ]]; then
    printf '\n' >&2
    # shellcheck disable=SC2086 # a list of names
    INVENTIV_STATE_DIR=$TEST_STATE_DIR "$REPO_ROOT/scripts/services.sh" down $STARTED_SERVICES
  fi
  if ((rc == 0)); then
    printf '\n==> all checks passed (%ss)\n' "$((SECONDS - T0))" >&2
    printf 'suites: %d passed, 0 failed\n' "${SUITES_RUN:-0}"
  elif ((STEP > 0)); then
    printf '\n==> FAILED at step %s: %s (exit %s)\n' "$STEP" "${STEP_NAME:-}" "$rc" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() {
  STEP=$((STEP + 1))
  STEP_NAME=$*
  printf '\n==============================================================================\n' >&2
  printf '==> [%s] %s\n' "$STEP" "$*" >&2
  printf '==============================================================================\n' >&2
}

# --- shared fixtures ------------------------------------------------------------

# Exports DATABASE_URL and REDIS_URL: the configured ones, else private
# servers in $TEST_STATE_DIR (started once per run, stopped by cleanup).
ensure_services() {
  ((SERVICES_READY)) && return 0
  step "services: PostgreSQL and Redis (configured, or private in $TEST_STATE_DIR)"
  local exports
  exports=$(INVENTIV_STATE_DIR=$TEST_STATE_DIR INVENTIV_PG_FAST=1 "$REPO_ROOT/scripts/services.sh" up)
  eval "$exports"
  STARTED_SERVICES=${INVENTIV_STARTED_SERVICES:-}
  unset INVENTIV_STARTED_SERVICES
  export DATABASE_URL REDIS_URL
  SERVICES_READY=1
}

# DATABASE_URL with its database replaced by `postgres` (query kept).
admin_database_url() {
  local url=$1 query="" scheme rest hostpart
  if [[ $url == *\?* ]]; then
    query="?${url#*\?}"
    url=${url%%\?*}
  fi
  scheme=${url%%://*}
  rest=${url#*://}
  hostpart=${rest%%/*}
  printf '%s://%s/postgres%s\n' "$scheme" "$hostpart" "$query"
}

# Tests create databases named inventiv_test_*; drop what a killed run left.
drop_leftover_test_databases() {
  step "drop leftover test databases (inventiv_test_*)"
  local psql admin drops
  psql=$(find_psql)
  admin=$(admin_database_url "$DATABASE_URL")
  drops=$("$psql" -X -q -v ON_ERROR_STOP=1 -d "$admin" -tA -c \
    "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE);', datname)
       FROM pg_database WHERE datname LIKE 'inventiv\_test\_%'")
  if [[ -z $drops ]]; then
    log "none"
    return 0
  fi
  log "dropping $(grep -c . <<<"$drops") database(s)"
  "$psql" -X -q -v ON_ERROR_STOP=1 -d "$admin" -f - <<<"$drops"
}

# --- suites (one function each, run in the order of SUITES) ---------------------

suite_rust_fmt() {
  step "cargo fmt --all --check"
  cargo fmt --all --check
}

suite_rust_clippy() {
  step "cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
}

# sqlx's checked queries against the migrated schema, and .sqlx/ current
# (the build the tests then reuse).
suite_sqlx() {
  ensure_services
  step "sqlx: every checked query fits the migrated schema, .sqlx/ is current (scripts/sqlx-prepare.sh --check)"
  "$REPO_ROOT/scripts/sqlx-prepare.sh" --check
}

# The API and the orchestrator never depend on each other, not even as a
# dev-dependency to boot one in the other's tests: their end-to-end tests
# live in inventiv-e2e, which depends on both. `cargo tree -p A -i B` prints
# the path from A to B, or fails with "did not match" when there is none.
suite_rust_seams() {
  step "no dependency path between inventiv-api and inventiv-orchestrator (cargo tree -e normal,dev)"
  local from to out rc
  for pair in "inventiv-api inventiv-orchestrator" "inventiv-orchestrator inventiv-api"; do
    read -r from to <<<"$pair"
    rc=0
    out=$(cargo tree -e normal,dev -p "$from" -i "$to" 2>&1) || rc=$?
    if ((rc == 0)); then
      printf '%s\n' "$out" >&2
      die "$from depends on $to (the path above): end-to-end tests belong in inventiv-e2e"
    fi
    if ! grep -q "did not match any packages" <<<"$out"; then
      printf '%s\n' "$out" >&2
      die "cargo tree -p $from -i $to failed"
    fi
    log "no path from $from to $to"
  done
}

# The orchestrator's node install test logs in over SSH to a real sshd it
# starts on loopback (Debian's openssh-server; ssh-keygen and ssh from
# openssh-client); the node it installs runs the relay (Debian's haproxy,
# its certificate made with openssl, as the tests' stand-in relays are). The
# metrics test checks every process's /metrics with promtool, and the
# prometheus test scrapes a stack with the shipped deploy/prometheus
# configuration (both from Debian's prometheus package).
suite_rust_tests() {
  ensure_services
  drop_leftover_test_databases
  if [[ ! -x /usr/sbin/sshd ]] || ! command -v ssh-keygen >/dev/null; then
    apt_install openssh-server openssh-client
  fi
  if [[ ! -x /usr/sbin/haproxy ]] || ! command -v openssl >/dev/null; then
    apt_install haproxy openssl
  fi
  if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    apt_install prometheus
  fi
  local extra=() out rc=0
  read -r -a extra <<<"${TEST_ARGS:-}"
  step "cargo test --workspace ${TEST_ARGS:-}"
  out=$(mktemp)
  if ((${#extra[@]})); then
    cargo test --workspace "${extra[@]}" 2>&1 | tee "$out" || rc=$?
  else
    # The end-to-end tests one at a time: each runs a whole stack (API,
    # orchestrators, real VMs with sshd, agent and engine; some 20 of them,
    # some under sustained load), and two at once on a 2-core machine starve
    # the workers' heartbeats past their deadlines.
    cargo test --workspace --exclude inventiv-e2e 2>&1 | tee "$out" || rc=$?
    if ((rc == 0)); then
      cargo test -p inventiv-e2e -- --test-threads=1 2>&1 | tee -a "$out" || rc=$?
    fi
  fi
  # One closing line for the whole run: cargo ends on a per-binary summary.
  awk '/^test result:/ { p += $4; f += $6 } END { printf "rust tests: %d passed, %d failed\n", p, f }' "$out"
  rm -f "$out"
  return "$rc"
}

# `make run` as a newcomer uses it: fresh state, private PostgreSQL/Redis,
# generated password, a deployment on the mock provider to `ready` and its
# termination, Ctrl-C, restart (see scripts/smoke-run.sh). Needs no services
# of its own: it starts (and purges) everything in a temporary dir.
suite_make_run_smoke() {
  step "make run smoke test (scripts/smoke-run.sh)"
  "$REPO_ROOT/scripts/smoke-run.sh"
}

suite_compose() {
  step "docker-compose -f docker-compose.yml [--profile observability] config -q"
  local dc=()
  if command -v docker-compose >/dev/null; then
    dc=(docker-compose)
  elif command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
    dc=(docker compose)
  elif is_root; then
    apt_install docker-compose
    dc=(docker-compose)
  else
    printf '\n%s\n%s\n%s\n\n' \
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' \
      '!!! SKIPPED: docker-compose.yml NOT validated (no docker-compose, not root).' \
      '!!! Install it: sudo apt-get install -y docker-compose' >&2
    return 0
  fi
  # An empty env file: validate the defaults, not a developer's .env.
  local empty
  empty=$(mktemp)
  # Then with the optional `observability` profile (Prometheus, Grafana).
  if ! "${dc[@]}" --env-file "$empty" -f docker-compose.yml config -q ||
    ! "${dc[@]}" --env-file "$empty" -f docker-compose.yml --profile observability config -q; then
    rm -f "$empty"
    return 1
  fi
  rm -f "$empty"
  log "docker-compose.yml is valid, with and without the observability profile"
}

# The shipped Prometheus files (deploy/prometheus, Debian's prometheus
# package): the configuration loads (with a stand-in token file), the rules
# load, every alert has a unit test, and the unit tests pass. Then the
# Grafana dashboards (deploy/grafana): scripts/check-dashboards.py, their
# expressions parsed by promtool, and a broken copy that must be refused.
suite_observability() {
  step "promtool: check config and rules, test rules (deploy/prometheus)"
  command -v promtool >/dev/null || apt_install prometheus
  local dir=$REPO_ROOT/deploy/prometheus tmp untested
  tmp=$(mktemp -d)
  cp -r "$dir/." "$tmp/"
  printf 'stand-in\n' >"$tmp/secrets/metrics-token"
  if ! promtool check config "$tmp/prometheus.yml"; then
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$tmp"
  promtool check rules "$dir/alerts.yml"
  untested=$(comm -23 \
    <(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$dir/alerts.yml" | sort -u) \
    <(sed -n 's/^ *alertname: *\([A-Za-z0-9_]*\).*/\1/p' "$dir/alerts_test.yml" | sort -u))
  [[ -z $untested ]] || die "alerts without a test in alerts_test.yml: $untested"
  (cd "$dir" && promtool test rules alerts_test.yml)

  step "Grafana dashboards: JSON, uids, data source, every series exists, PromQL parses (scripts/check-dashboards.py)"
  local boards=$REPO_ROOT/deploy/grafana/dashboards rc=0
  tmp=$(mktemp -d)
  python3 "$REPO_ROOT/scripts/check-dashboards.py" --rules-out "$tmp/expressions.yml" &&
    promtool check rules "$tmp/expressions.yml" || rc=$?
  if ((rc == 0)); then
    # The check can fail: a copy of the dashboards naming a series nothing
    # writes is refused, and the series is named.
    mkdir "$tmp/broken"
    cp "$boards"/*.json "$tmp/broken/"
    sed -i 's/inventiv_v1_retries_total/inventiv_v1_retry_total/' "$tmp/broken/inventiv-data-plane.json"
    if python3 "$REPO_ROOT/scripts/check-dashboards.py" --dashboards "$tmp/broken" 2>"$tmp/err"; then
      log "check-dashboards.py accepted a panel naming inventiv_v1_retry_total"
      rc=1
    elif ! grep -q "unknown metric 'inventiv_v1_retry_total'" "$tmp/err"; then
      cat "$tmp/err" >&2
      log "check-dashboards.py failed without naming inventiv_v1_retry_total"
      rc=1
    fi
  fi
  rm -rf "$tmp"
  return "$rc"
}

# The worker agent (Python, inventiv-worker/agent): ruff lint and format check,
# then pytest against the real mock engine (built here) and HAProxy (the tests
# apt-get it when missing). Venv in .local/venv-worker, rebuilt when
# requirements-dev.txt changes.
suite_worker_python() {
  step "worker agent: ruff check, ruff format --check, pytest (inventiv-worker/agent)"
  local agent=$REPO_ROOT/inventiv-worker/agent venv=$REPO_ROOT/.local/venv-worker rc=0
  python_venv "$venv" "$agent/requirements-dev.txt"
  command -v promtool >/dev/null || apt_install prometheus
  [[ -n ${INVENTIV_MOCK_ENGINE:-} ]] || cargo build -p inventiv-mock-engine
  (cd "$agent" && "$venv/bin/ruff" check . && "$venv/bin/ruff" format --check .)
  (cd "$agent" && "$venv/bin/python" -m pytest -q) || rc=$?
  ((rc != 5)) || die "pytest collected no tests in $agent"
  return "$rc"
}

# The dashboard (inventiv-frontend): dependencies from the lock file, the
# production build the API serves, and the Vitest unit tests.
suite_frontend() {
  step "dashboard: npm ci, build, unit tests (inventiv-frontend)"
  command -v npm >/dev/null || die "npm is missing: install Node.js 20 and npm"
  (cd "$REPO_ROOT/inventiv-frontend" && npm ci --no-audit --no-fund && npm run build && npm test)
}

# The dashboard in a browser: Debian's Chromium (installed when missing)
# driven by playwright-core through every acceptance step, against the whole
# stack on the mock provider as `make run` starts it, in a private state dir
# with its own PostgreSQL and Redis (scripts/e2e-run.sh). Drops no database.
suite_frontend_e2e() {
  step "dashboard browser test: e2e/run.mjs (FULL=1) against make run on the mock provider (scripts/e2e-run.sh)"
  command -v npm >/dev/null || die "npm is missing: install Node.js 20 and npm"
  [[ -x /usr/bin/chromium ]] || apt_install chromium
  [[ -d $REPO_ROOT/inventiv-frontend/node_modules ]] \
    || (cd "$REPO_ROOT/inventiv-frontend" && npm ci --no-audit --no-fund)
  "$REPO_ROOT/scripts/e2e-run.sh"
}

# The API under schemathesis (PyPI, pinned in scripts/schemathesis/
# requirements.txt, venv in .local/venv-schemathesis): not_a_server_error,
# status_code_conformance, response_schema_conformance, ignored_auth and
# use_after_free over /openapi.json, with a session and an API key, against
# the whole stack as `make run` starts it in a private state dir
# (scripts/schemathesis-run.sh). Drops no database.
suite_schemathesis() {
  step "API fuzzing: schemathesis over /openapi.json against make run on the mock provider (scripts/schemathesis-run.sh)"
  "$REPO_ROOT/scripts/schemathesis-run.sh"
}

# ------------------------------------------------------------------------------
# THE SUITES, in order. To add one (pytest for inventiv-worker, the frontend's
# npm tests, ...): write a `suite_NAME` function above that starts with
# `step "..."` (and calls ensure_services if it needs PostgreSQL/Redis), then
# add NAME here.
SUITES=(rust_fmt rust_clippy rust_seams sqlx rust_tests make_run_smoke schemathesis compose observability worker_python frontend frontend_e2e)
# ------------------------------------------------------------------------------

selected=("$@")
((${#selected[@]})) || selected=("${SUITES[@]}")
for s in "${selected[@]}"; do
  declare -F "suite_$s" >/dev/null || die "unknown suite '$s' (known: ${SUITES[*]})"
done
SUITES_RUN=0
for s in "${selected[@]}"; do
  "suite_$s"
  SUITES_RUN=$((SUITES_RUN + 1))
done
