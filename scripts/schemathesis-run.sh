#!/usr/bin/env bash
# schemathesis over the API's own /openapi.json (a suite of `make test`:
# scripts/test.sh schemathesis).
#
#  1. a fresh state dir (mktemp -d) with its private PostgreSQL and Redis
#     (DATABASE_URL / REDIS_URL are ignored), free ports, the mock provider:
#     scripts/run.sh (what `make run` runs) in its own process group; the
#     admin's credentials from its banner;
#  2. logs in as the admin (a session token, also sent as the session
#     cookie) and creates an API key in the admin's organization;
#  3. `st run` (version pinned in scripts/schemathesis/requirements.txt,
#     installed in .local/venv-schemathesis) with the checks
#     not_a_server_error, status_code_conformance,
#     response_schema_conformance, ignored_auth and use_after_free, every
#     phase (examples, coverage, fuzzing, stateful), a fixed seed and at most
#     ST_MAX_EXAMPLES (100) cases per operation, in two runs: the /v1
#     routes with the API key, then every other route with the session,
#     less the routes that end the caller's own session (they would end
#     the run's);
#  4. stops the stack and deletes the state dir.
#
# ST_KEEP_STATE=1 keeps the state dir (and the report in it) for a
# post-mortem. Needs: python3 (with venv), curl, setsid, and what `make run`
# needs for the mock provider.

# shellcheck disable=SC2317 # cleanup is called from traps
set -euo pipefail

LOG_TAG=schemathesis
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

BANNER_TIMEOUT_SECS=${ST_BANNER_TIMEOUT_SECS:-300}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-100}
SEED=${ST_SEED:-20261205}
ST_DIR=$REPO_ROOT/scripts/schemathesis
VENV=$REPO_ROOT/.local/venv-schemathesis
T0=$SECONDS

# Routes that end the caller's own session: logging out, revoking a session
# (the run's own is listed by GET /auth/sessions).
EXCLUDED_PATHS=(/auth/logout '/auth/sessions/{session_id}/revoke')

newcomer_environment

STATE=$(mktemp -d "${TMPDIR:-/tmp}/inventiv-st.XXXXXX")

cleanup() {
  local rc=$?
  trap '' INT TERM
  trap - EXIT
  set +e
  stack_stop "$STATE" "${ST_KEEP_STATE:-0}" "$rc"
  log "schemathesis $( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $((SECONDS - T0))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v setsid >/dev/null || die "setsid (util-linux) is required"
command -v curl >/dev/null || die "curl is required"

python_venv "$VENV" "$ST_DIR/requirements.txt"

API_PORT=$(free_port 8001 8003)
ORCH_PORT=$(free_port 8001 8003 "$API_PORT")
ORCH_METRICS_PORT=$(free_port 8001 8002 8003 8004 "$API_PORT" "$ORCH_PORT")
MOCK_FIRST_ADDRESS=${ST_MOCK_FIRST_ADDRESS:-127.0.$((180 + RANDOM % 20)).1}
BASE_URL="http://127.0.0.1:$API_PORT"

log "scripts/run.sh (API $BASE_URL, orchestrator port $ORCH_PORT, state $STATE)"
# One session token serves the whole run: it must outlive it.
stack_start "$STATE" INVENTIV_API_ADDR="127.0.0.1:$API_PORT" \
  INVENTIV_ORCHESTRATOR_ADDR="127.0.0.1:$ORCH_PORT" \
  INVENTIV_ORCHESTRATOR_METRICS_ADDR="127.0.0.1:$ORCH_METRICS_PORT" \
  INVENTIV_MOCK_FIRST_ADDRESS="$MOCK_FIRST_ADDRESS" \
  INVENTIV_SCALEWAY_API_URL=http://127.0.0.1:1 \
  INVENTIV_ACCESS_TOKEN_TTL_SECS=7200
stack_wait_banner "$BANNER_TIMEOUT_SECS"
log "stack up after $((SECONDS - T0))s"

# post PATH JSON [TOKEN]: the answer's body; fails on a non-2xx status.
post() {
  local auth=()
  [[ -n ${3:-} ]] && auth=(-H "authorization: Bearer $3")
  curl -fsS --noproxy '*' --max-time 20 -X POST "${auth[@]}" \
    -H 'content-type: application/json' --data-binary "$2" "$BASE_URL$1"
}
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

credentials=$(python3 -c 'import json, sys; print(json.dumps({"email": sys.argv[1], "password": sys.argv[2]}))' \
  "$ADMIN_EMAIL" "$ADMIN_PASSWORD")
ST_SESSION_TOKEN=$(post /auth/login "$credentials" | field access_token)
ST_API_KEY=$(post /api-keys '{"name":"schemathesis"}' "$ST_SESSION_TOKEN" | field key)
export ST_SESSION_TOKEN ST_API_KEY
log "logged in as $ADMIN_EMAIL, API key created"

excludes=()
for p in "${EXCLUDED_PATHS[@]}"; do excludes+=(--exclude-path "$p"); done
# st_run DESCRIPTION ARGS...: one `st run` over the document, its report
# (JUnit) in the state dir.
st_run() {
  local what=$1
  shift
  log "st run ($what): seed $SEED, at most $MAX_EXAMPLES cases per operation"
  # From the state dir: st keeps a cache of past failures (.schemathesis/)
  # that it would replay; each run starts without one. One worker: with
  # two threads, CPython 3.11's parser now and then fails inside Hypothesis
  # ("SystemError: AST constructor recursion depth mismatch",
  # python/cpython#106905), a flaky run that is no finding of ours.
  (cd "$STATE" && "$VENV/bin/st" --config-file "$ST_DIR/schemathesis.toml" run "$BASE_URL/openapi.json" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,ignored_auth,use_after_free \
    --seed "$SEED" --max-examples "$MAX_EXAMPLES" --generation-database none \
    --workers 1 --request-timeout 20 --no-color \
    --report junit --report-dir "$STATE/report" "$@")
}
# The OpenAI-compatible routes first, with the API key: the session-based run
# may (rightly) restrict or revoke that key, as an owner can.
st_run "/v1, API key" --include-tag openai
log "excluding ${EXCLUDED_PATHS[*]} (they end the run's own session)"
st_run "every other route, session" --exclude-tag openai "${excludes[@]}"
