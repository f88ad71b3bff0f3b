#!/usr/bin/env bash
# `make run`: the whole control plane on this machine, in the foreground,
# with the mock cloud provider ready to deploy on.
#
#  1. loads .env if present (variables already in the environment win);
#  2. checks for OpenSSH (server and client) and python3, which the mock
#     provider's VMs need; installs them from Debian's packages when root,
#     else prints the apt-get command;
#  3. DATABASE_URL / REDIS_URL: used when set, else a private PostgreSQL and
#     Redis are started in $INVENTIV_STATE_DIR (scripts/services.sh);
#  4. admin credentials: INVENTIV_ADMIN_EMAIL (admin@inventiv.local) and
#     INVENTIV_ADMIN_PASSWORD, else the one kept in
#     $INVENTIV_STATE_DIR/admin-password, else a new random one stored there;
#  5. secrets: INVENTIV_JWT_SECRET and INVENTIV_ENCRYPTION_KEY (or their
#     *_FILE variants) when set, else random ones generated on the first run
#     and kept in $INVENTIV_STATE_DIR/secrets/ (mode 600), passed to both
#     processes as INVENTIV_JWT_SECRET_FILE / INVENTIV_ENCRYPTION_KEY_FILE;
#     the built-in development values are never used (see docs/security.md);
#  6. builds inventiv-api, inventiv-orchestrator and inventiv-mock-engine
#     (debug) and the worker agent bundle (scripts/agent-bundle.sh), exports
#     what the orchestrator needs to install workers (INVENTIV_AGENT_BUNDLE,
#     INVENTIV_BOOTSTRAP_SCRIPT, INVENTIV_MOCK_ENGINE,
#     INVENTIV_CONTROL_PLANE_URL; each only when not set already), applies
#     the migrations (`inventiv-api migrate`), starts the API and the
#     orchestrator with their output in $INVENTIV_STATE_DIR/logs/
#     {api,orchestrator}.log and on the terminal;
#  7. waits for http://$INVENTIV_API_ADDR/readyz, prints how to log in and
#     how to deploy (scripts/demo-deploy.sh);
#  8. Ctrl-C (or SIGTERM) stops both processes, then every process of the
#     mock VMs (sshd, agents, engines: those mentioning
#     $INVENTIV_STATE_DIR/mock-vms, see mock_vm_pids in scripts/lib.sh), then
#     the private services this run started. The VM directories are kept:
#     on the next start the orchestrator finds those VMs powered off (sshd
#     down). If either process exits on its own, everything stops and the
#     script exits non-zero.

# shellcheck disable=SC2317 # cleanup & co. are called from traps
set -euo pipefail

LOG_TAG=run
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
load_dotenv

export INVENTIV_API_ADDR="${INVENTIV_API_ADDR:-127.0.0.1:8003}"
export INVENTIV_ORCHESTRATOR_ADDR="${INVENTIV_ORCHESTRATOR_ADDR:-127.0.0.1:8001}"
export INVENTIV_METRICS_ADDR="${INVENTIV_METRICS_ADDR:-127.0.0.1:8004}"
export INVENTIV_ORCHESTRATOR_METRICS_ADDR="${INVENTIV_ORCHESTRATOR_METRICS_ADDR:-127.0.0.1:8002}"
INVENTIV_STATE_DIR=$(abs_path "${INVENTIV_STATE_DIR:-.local}")
export INVENTIV_STATE_DIR
STATE_DIR=$INVENTIV_STATE_DIR
LOG_DIR="$STATE_DIR/logs"
mkdir -p "$LOG_DIR"
TARGET_DIR=$(abs_path "${CARGO_TARGET_DIR:-target}")
READY_TIMEOUT_SECS=${INVENTIV_READY_TIMEOUT_SECS:-60}
MOCK_VMS_DIR="$STATE_DIR/mock-vms"

API_PID=""
ORCH_PID=""
STARTED_SERVICES=""

# True while PID runs (a zombie does not count).
alive() {
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null \
    && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

stop_processes() {
  local pid i
  for pid in "$API_PID" "$ORCH_PID"; do
    if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for ((i = 0; i < 150; i++)); do
    alive "$API_PID" || alive "$ORCH_PID" || break
    sleep 0.1
  done
  for pid in "$API_PID" "$ORCH_PID"; do
    if alive "$pid"; then
      warn "pid $pid did not stop within 15 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
}

cleanup() {
  local rc=$?
  # A second Ctrl-C must not cut the cleanup short.
  trap '' INT TERM
  trap - EXIT
  set +e
  if [[ -n $API_PID || -n $ORCH_PID ]]; then
    log "stopping inventiv-api and inventiv-orchestrator"
    stop_processes
  fi
  # After the orchestrator (it would start them again). Only processes of
  # the VMs of this state dir; their directories stay.
  if [[ -n $ORCH_PID ]]; then
    stop_mock_vms "$MOCK_VMS_DIR"
  fi
  if [[ -n $STARTED_SERVICES ]]; then
    # shellcheck disable=SC2086 # a list of names
    "$REPO_ROOT/scripts/services.sh" down $STARTED_SERVICES
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- prerequisites of the mock provider ----------------------------------------
# Each mock VM runs a real sshd (Debian: openssh-server) that the orchestrator
# logs in to with ssh / ssh-keygen (openssh-client); bootstrap.sh then runs
# the agent with python3 (>= 3.10), found on sshd's default PATH, and the
# relay in front of its engine: HAProxy, with a certificate made by openssl.
SESSION_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
missing=()
if [[ ! -x /usr/sbin/sshd ]]; then missing+=(openssh-server); fi
if ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then missing+=(openssh-client); fi
if ! PATH=$SESSION_PATH command -v python3 >/dev/null; then missing+=(python3 python3-venv); fi
if ! PATH=$SESSION_PATH command -v haproxy >/dev/null; then missing+=(haproxy); fi
if ! PATH=$SESSION_PATH command -v openssl >/dev/null; then missing+=(openssl); fi
if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
is_root || warn "not root: the mock provider's VMs (sshd, root logins) will not work; deployments on it will fail"

# --- services -----------------------------------------------------------------
# Data from an earlier run (or a configured database) may hold credentials
# encrypted with the built-in key of older versions (see "secrets" below).
HAD_DATA=0
if [[ -f $STATE_DIR/postgres/PG_VERSION || -n ${DATABASE_URL:-} ]]; then HAD_DATA=1; fi
exports=$("$REPO_ROOT/scripts/services.sh" up)
eval "$exports"
STARTED_SERVICES=${INVENTIV_STARTED_SERVICES:-}
unset INVENTIV_STARTED_SERVICES

# --- admin credentials --------------------------------------------------------
export INVENTIV_ADMIN_EMAIL="${INVENTIV_ADMIN_EMAIL:-admin@inventiv.local}"
PASSWORD_FILE="$STATE_DIR/admin-password"
if [[ -n ${INVENTIV_ADMIN_PASSWORD:-} ]]; then
  PASSWORD_ORIGIN="from INVENTIV_ADMIN_PASSWORD"
elif [[ -s $PASSWORD_FILE ]]; then
  INVENTIV_ADMIN_PASSWORD=$(head -n 1 "$PASSWORD_FILE")
  PASSWORD_ORIGIN="kept in $PASSWORD_FILE"
else
  INVENTIV_ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
  (umask 077 && printf '%s\n' "$INVENTIV_ADMIN_PASSWORD" >"$PASSWORD_FILE")
  chmod 600 "$PASSWORD_FILE"
  PASSWORD_ORIGIN="generated now, kept in $PASSWORD_FILE"
fi
export INVENTIV_ADMIN_PASSWORD

# --- secrets ----------------------------------------------------------------------
# Random per install, never the constants published in the source code.
SECRETS_DIR="$STATE_DIR/secrets"
(umask 077 && mkdir -p "$SECRETS_DIR")
chmod 700 "$SECRETS_DIR"
# keep_secret NAME FILE BYTES: NAME (or NAME_FILE) when set; else FILE in the
# secrets dir, generated (BYTES random bytes, hex) when missing. Exported as
# NAME_FILE so that the value is in no process environment.
keep_secret() {
  local name=$1 file="$SECRETS_DIR/$2" bytes=$3 file_var="$1_FILE"
  [[ -n ${!name:-} || -n ${!file_var:-} ]] && return 0
  if [[ ! -s $file ]]; then
    (umask 077 && head -c "$bytes" /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file")
    log "generated $file"
  fi
  chmod 600 "$file"
  export "$file_var=$file"
}
# A state dir from before random keys holds credentials encrypted with the
# built-in key (version 1): the new key becomes version 2 and the API
# re-encrypts every row with it at start-up.
if [[ -z ${INVENTIV_ENCRYPTION_KEY:-}${INVENTIV_ENCRYPTION_KEY_FILE:-} && ! -s $SECRETS_DIR/encryption-key \
  && $HAD_DATA == 1 ]]; then
  echo 2 >"$SECRETS_DIR/encryption-key-version"
fi
keep_secret INVENTIV_JWT_SECRET jwt-secret 48
keep_secret INVENTIV_ENCRYPTION_KEY encryption-key 32
if [[ -z ${INVENTIV_ENCRYPTION_KEY_VERSION:-} && -s $SECRETS_DIR/encryption-key-version ]]; then
  export INVENTIV_ENCRYPTION_KEY_VERSION=2
  export INVENTIV_ENCRYPTION_KEY_PREVIOUS=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
fi

# --- build --------------------------------------------------------------------
log "building inventiv-api, inventiv-orchestrator and inventiv-mock-engine (debug)"
cargo build --bin inventiv-api --bin inventiv-orchestrator --bin inventiv-mock-engine
API_BIN="$TARGET_DIR/debug/inventiv-api"
ORCH_BIN="$TARGET_DIR/debug/inventiv-orchestrator"
ENGINE_BIN="$TARGET_DIR/debug/inventiv-mock-engine"
[[ -x $API_BIN && -x $ORCH_BIN && -x $ENGINE_BIN ]] || die "binaries not found in $TARGET_DIR/debug"

# What the orchestrator installs on nodes (see docs/configuration.md); a
# value already set (environment or .env) wins.
if [[ -z ${INVENTIV_AGENT_BUNDLE:-} ]]; then
  log "building the worker agent bundle (scripts/agent-bundle.sh)"
  bundle_line=$("$REPO_ROOT/scripts/agent-bundle.sh" --out "$TARGET_DIR/agent")
  INVENTIV_AGENT_BUNDLE=${bundle_line#*  }
fi
export INVENTIV_AGENT_BUNDLE
[[ -f $INVENTIV_AGENT_BUNDLE ]] || die "agent bundle $INVENTIV_AGENT_BUNDLE not found"
export INVENTIV_BOOTSTRAP_SCRIPT="${INVENTIV_BOOTSTRAP_SCRIPT:-$REPO_ROOT/inventiv-worker/bootstrap.sh}"
export INVENTIV_MOCK_ENGINE="${INVENTIV_MOCK_ENGINE:-$ENGINE_BIN}"
export INVENTIV_CONTROL_PLANE_URL="${INVENTIV_CONTROL_PLANE_URL:-http://$(client_addr "$INVENTIV_API_ADDR")}"

# The dashboard, served by the API at /: rebuilt when missing or older than
# its sources. Without npm the API still runs (the dashboard is then absent).
FRONTEND_DIR="$REPO_ROOT/inventiv-frontend"
if command -v npm >/dev/null; then
  if [[ ! -f $FRONTEND_DIR/dist/index.html ]] \
    || [[ -n $(find "$FRONTEND_DIR/src" "$FRONTEND_DIR/index.html" "$FRONTEND_DIR/package.json" -newer "$FRONTEND_DIR/dist/index.html" -print -quit) ]]; then
    log "building the dashboard (inventiv-frontend)"
    (cd "$FRONTEND_DIR" && { [[ -d node_modules ]] || npm ci --no-audit --no-fund; } && npm run build) >&2
  fi
else
  log "npm not found: the dashboard is not built (install Node.js 20 and npm for it)"
fi
export INVENTIV_FRONTEND_DIR="${INVENTIV_FRONTEND_DIR:-$FRONTEND_DIR/dist}"

log "applying database migrations"
"$API_BIN" migrate 2>&1 | sed -u 's/^/[migrate] /'

# --- start --------------------------------------------------------------------
# start NAME BINARY: runs BINARY in the background, its output appended to
# $LOG_DIR/NAME.log (the previous run's log is kept as NAME.log.1) and shown
# on the terminal with a [NAME] prefix. Sets STARTED_PID.
#
# The tee | sed pipeline ignores SIGINT. Ctrl-C goes to the whole foreground
# process group; if the pipeline died with it, the process's shutdown log
# lines would hit a closed pipe (EPIPE), and a Rust process whose logger then
# panics may never finish shutting down. Instead the pipeline drains the
# output until the process exits and closes it.
start() {
  local name=$1 bin=$2 logfile="$LOG_DIR/$1.log"
  if [[ -f $logfile ]]; then mv -f "$logfile" "$logfile.1"; fi
  "$bin" > >(
    trap '' INT
    tee -a "$logfile" | sed -u "s/^/[$name] /"
  ) 2>&1 &
  STARTED_PID=$!
}
start api "$API_BIN"
API_PID=$STARTED_PID
start orchestrator "$ORCH_BIN"
ORCH_PID=$STARTED_PID

show_tails() {
  local f
  for f in "$LOG_DIR/api.log" "$LOG_DIR/orchestrator.log"; do
    [[ -f $f ]] || continue
    printf '\n--- last lines of %s ---\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

BASE_URL="http://$(client_addr "$INVENTIV_API_ADDR")"
log "waiting for $BASE_URL/readyz (up to ${READY_TIMEOUT_SECS}s)"
deadline=$((SECONDS + READY_TIMEOUT_SECS))
until [[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 \
  "$BASE_URL/readyz" || true) == 200 ]]; do
  if ! alive "$API_PID"; then
    show_tails
    die "inventiv-api exited before it was ready"
  fi
  if ! alive "$ORCH_PID"; then
    show_tails
    die "inventiv-orchestrator exited before the API was ready"
  fi
  if ((SECONDS >= deadline)); then
    show_tails
    die "$BASE_URL/readyz did not answer 200 within ${READY_TIMEOUT_SECS}s"
  fi
  sleep 0.25
done

# --- banner -------------------------------------------------------------------
json_escape() {
  local s=${1//\\/\\\\}
  printf '%s' "${s//\"/\\\"}"
}
LOGIN_JSON="{\"email\":\"$(json_escape "$INVENTIV_ADMIN_EMAIL")\",\"password\":\"$(json_escape "$INVENTIV_ADMIN_PASSWORD")\"}"
# Hide a password that a configured DATABASE_URL / REDIS_URL may carry.
mask_url() { sed -E 's#(//[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# scripts/demo-deploy.sh finds the API and the password by itself on the
# defaults; otherwise the command says where they are.
DEMO_COMMAND=scripts/demo-deploy.sh
if [[ $STATE_DIR != "$REPO_ROOT/.local" ]]; then
  DEMO_COMMAND="INVENTIV_STATE_DIR=$(shell_quote "$STATE_DIR") $DEMO_COMMAND"
fi
[[ $BASE_URL == http://127.0.0.1:8003 ]] || DEMO_COMMAND="$DEMO_COMMAND --api $BASE_URL"

cat <<EOF

==============================================================================
  Inventiv Agents is running

  Dashboard / API   $BASE_URL/
  Swagger UI        $BASE_URL/docs
  OpenAPI           $BASE_URL/openapi.json
  Metrics           http://$(client_addr "$INVENTIV_METRICS_ADDR")/metrics
                    http://$(client_addr "$INVENTIV_ORCHESTRATOR_METRICS_ADDR")/metrics (orchestrator)

  Admin e-mail      $INVENTIV_ADMIN_EMAIL
  Admin password    $INVENTIV_ADMIN_PASSWORD
                    ($PASSWORD_ORIGIN)

  Log in:
    curl -s -X POST $BASE_URL/auth/login -H 'content-type: application/json' -d $(shell_quote "$LOGIN_JSON")

  Deploy a model on the mock provider (a VM on 127.0.x.y, its worker
  installed over SSH, the mock engine answering the OpenAI API):
    $DEMO_COMMAND

  Database          $(mask_url "$DATABASE_URL")
  Redis             $(mask_url "$REDIS_URL")
  Mock VMs          $MOCK_VMS_DIR
  Logs              $LOG_DIR/{api,orchestrator}.log

  Ctrl-C stops everything.
==============================================================================

EOF

# --- foreground ---------------------------------------------------------------
# Returns when either process exits (a signal runs the trap instead).
if wait -n -p EXITED "$API_PID" "$ORCH_PID"; then status=0; else status=$?; fi
if [[ ${EXITED:-} == "$API_PID" ]]; then name=inventiv-api; else name=inventiv-orchestrator; fi
log "$name exited with status $status; stopping everything"
show_tails
exit $((status == 0 ? 1 : status))
