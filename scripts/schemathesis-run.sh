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

export INVENTIV_SKIP_DOTENV=1
for v in $(compgen -v INVENTIV_) $(compgen -v SMTP_); do
  case $v in
    INVENTIV_SKIP_DOTENV | INVENTIV_READY_TIMEOUT_SECS) ;;
    *) unset "$v" ;;
  esac
done
unset DATABASE_URL REDIS_URL MAKEFLAGS MFLAGS MAKELEVEL

STATE=$(mktemp -d "${TMPDIR:-/tmp}/inventiv-st.XXXXXX")
RUN_OUT="$STATE/run.out"
RUN_PID=""

alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

show_output() {
  [[ -f $RUN_OUT ]] || return 0
  printf '\n--- last 60 lines of scripts/run.sh (%s) ---\n' "$RUN_OUT" >&2
  tail -n 60 "$RUN_OUT" >&2
  printf -- '--- end ---\n' >&2
}

cleanup() {
  local rc=$? i
  trap '' INT TERM
  trap - EXIT
  set +e
  if alive "$RUN_PID"; then
    log "stopping scripts/run.sh (process group $RUN_PID)"
    kill -INT -- "-$RUN_PID" 2>/dev/null
    for ((i = 0; i < 600; i++)); do
      alive "$RUN_PID" || break
      ((i == 300)) && kill -TERM -- "-$RUN_PID" 2>/dev/null
      ((i == 450)) && kill -KILL -- "-$RUN_PID" 2>/dev/null
      sleep 0.1
    done
    wait "$RUN_PID" 2>/dev/null
  fi
  ((rc == 0)) || show_output
  stop_mock_vms "$STATE/mock-vms"
  if [[ ${ST_KEEP_STATE:-0} == 1 ]]; then
    INVENTIV_STATE_DIR=$STATE "$REPO_ROOT/scripts/services.sh" down
    log "kept $STATE (ST_KEEP_STATE=1)"
  else
    INVENTIV_STATE_DIR=$STATE "$REPO_ROOT/scripts/services.sh" purge 2>&1 | sed 's/^/[schemathesis] /' >&2
    rm -rf -- "$STATE"
  fi
  log "schemathesis $( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $((SECONDS - T0))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v setsid >/dev/null || die "setsid (util-linux) is required"
command -v curl >/dev/null || die "curl is required"

# The venv, rebuilt when the pinned requirements change.
want=$(sha256sum "$ST_DIR/requirements.txt" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/st || $(cat "$VENV/.requirements.sha256" 2>/dev/null) != "$want" ]]; then
  log "creating $VENV from scripts/schemathesis/requirements.txt"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ST_DIR/requirements.txt"
  printf '%s\n' "$want" >"$VENV/.requirements.sha256"
fi

API_PORT=$(free_port 8001 8003)
ORCH_PORT=$(free_port 8001 8003 "$API_PORT")
MOCK_FIRST_ADDRESS=${ST_MOCK_FIRST_ADDRESS:-127.0.$((180 + RANDOM % 20)).1}
BASE_URL="http://127.0.0.1:$API_PORT"

log "scripts/run.sh (API $BASE_URL, orchestrator port $ORCH_PORT, state $STATE)"
(
  trap - INT QUIT
  # One session token serves the whole run: it must outlive it.
  INVENTIV_STATE_DIR=$STATE INVENTIV_API_ADDR="127.0.0.1:$API_PORT" \
    INVENTIV_ORCHESTRATOR_ADDR="127.0.0.1:$ORCH_PORT" \
    INVENTIV_MOCK_FIRST_ADDRESS=$MOCK_FIRST_ADDRESS \
    INVENTIV_SCALEWAY_API_URL=http://127.0.0.1:1 \
    INVENTIV_ACCESS_TOKEN_TTL_SECS=7200 \
    exec setsid "$REPO_ROOT/scripts/run.sh" </dev/null >"$RUN_OUT" 2>&1
) &
RUN_PID=$!

deadline=$((SECONDS + BANNER_TIMEOUT_SECS))
until grep -q '^  Ctrl-C stops everything\.' "$RUN_OUT" 2>/dev/null; do
  alive "$RUN_PID" || die "scripts/run.sh exited before printing its banner"
  ((SECONDS < deadline)) || die "no banner from scripts/run.sh within ${BANNER_TIMEOUT_SECS}s"
  sleep 0.25
done
ADMIN_EMAIL=$(sed -n 's/^  Admin e-mail \{2,\}\([^ ].*\)$/\1/p' "$RUN_OUT" | head -n 1)
ADMIN_PASSWORD=$(sed -n 's/^  Admin password \{2,\}\([^ ].*\)$/\1/p' "$RUN_OUT" | head -n 1)
[[ -n $ADMIN_EMAIL && -n $ADMIN_PASSWORD ]] || die "no admin credentials in the banner of scripts/run.sh"
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
  # that it would replay; each run starts without one.
  (cd "$STATE" && "$VENV/bin/st" --config-file "$ST_DIR/schemathesis.toml" run "$BASE_URL/openapi.json" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,ignored_auth,use_after_free \
    --seed "$SEED" --max-examples "$MAX_EXAMPLES" --generation-database none \
    --workers 2 --request-timeout 20 --no-color \
    --report junit --report-dir "$STATE/report" "$@")
}
# The OpenAI-compatible routes first, with the API key: the session-based run
# may (rightly) restrict or revoke that key, as an owner can.
st_run "/v1, API key" --include-tag openai
log "excluding ${EXCLUDED_PATHS[*]} (they end the run's own session)"
st_run "every other route, session" --exclude-tag openai "${excludes[@]}"
