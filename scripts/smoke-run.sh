#!/usr/bin/env bash
# Acceptance test of `make run`, used the way a newcomer uses it (a suite of
# `make test`: scripts/test.sh make_run_smoke).
#
#  1. a fresh state dir (mktemp -d), no DATABASE_URL / REDIS_URL (so the
#     private PostgreSQL and Redis are started), no INVENTIV_ADMIN_PASSWORD
#     (so one is generated), free ports for the API and the orchestrator
#     (not 8003/8001, which a developer's own `make run` may hold);
#  2. `make run` in the background; waits for its banner and reads the admin
#     e-mail and password from what it printed;
#  3. logs in, checks /healthz, /readyz, /openapi.json, /docs/, creates an
#     organization;
#  4. deploys on the mock provider with scripts/demo-deploy.sh (a mock VM
#     with its own sshd, the agent installed over SSH, the mock engine):
#     `ready` with progress 100 and a chat completion answered within
#     SMOKE_DEPLOY_TIMEOUT_SECS; DELETE /instances/{id}: `terminated` within
#     60 s, the VM's directory removed, no process mentioning it left;
#     then deploys a second instance and leaves it running;
#  5. Ctrl-C (SIGINT to the process group, as a terminal does); checks that
#     everything stopped: make, the API and orchestrator ports, the private
#     PostgreSQL and Redis, the second VM's processes (its directory stays),
#     and that no process mentions the state dir any more;
#  6. `make run` again on the same state dir: same password, the login works,
#     the organization is still there, the second instance is still listed
#     and can be terminated (its VM directory goes); stops it again;
#  7. deletes the state dir (scripts/services.sh purge).
#
# Secrets (after the first banner): the JWT secret and the credentials key
# are random files in $STATE/secrets (mode 600) that both processes read
# (never the built-in values, no insecure-development flag); a token signed
# with the generated secret is accepted, one signed with any constant of the
# source code (every `const ...: &str` and every literal given to a
# *SECRET*/*KEY*/*TOKEN*/*PASSWORD* name) is refused.
#
# Whatever fails, the EXIT trap stops what was started and deletes the state
# dir (SMOKE_KEEP_STATE=1 keeps it for a post-mortem).
#
# Settings: SMOKE_TIMEOUT_SECS (180) bounds each wait for the banner,
# SMOKE_DEPLOY_TIMEOUT_SECS (120) each wait for a deployment to be ready.
# Needs: make, curl, python3, a Rust toolchain, and what `make run` installs
# for the mock provider (openssh-server, openssh-client, haproxy, openssl)
# when root.

# shellcheck disable=SC2317 # cleanup & co. are called from traps
set -euo pipefail

LOG_TAG=smoke
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

TIMEOUT_SECS=${SMOKE_TIMEOUT_SECS:-180}
DEPLOY_TIMEOUT_SECS=${SMOKE_DEPLOY_TIMEOUT_SECS:-120}
T0=$SECONDS

# --- a newcomer's environment ------------------------------------------------
# No .env, no configured database, Redis, password, SMTP or production mode:
# only the defaults. INVENTIV_READY_TIMEOUT_SECS stays (slow machines).
# Not a sub-make of `make test` either: no inherited jobserver, no
# "Entering directory".
newcomer_environment

STATE=$(mktemp -d "${TMPDIR:-/tmp}/inventiv-smoke.XXXXXX")
export INVENTIV_STATE_DIR=$STATE
WORK=$(mktemp -d "${TMPDIR:-/tmp}/inventiv-smoke-out.XXXXXX")

MAKE_PID=""   # the current `make run` (leader of its own process group)
RUN_OUT=""    # its output
RUN_NO=0

# --- helpers -------------------------------------------------------------------

# True while PID runs (a zombie does not count).
alive() {
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null \
    && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# Pids of the processes still in process group $1.
group_members() {
  if command -v pgrep >/dev/null; then
    pgrep -g "$1" || true
    return 0
  fi
  local stat line pid pgid
  for stat in /proc/[0-9]*/stat; do
    read -r line <"$stat" 2>/dev/null || continue
    pid=${line%% *}
    # Field 2 (comm) may hold spaces: cut at the last ')'.
    read -r _ _ pgid _ <<<"${line##*) }"
    [[ $pgid == "$1" ]] && printf '%s\n' "$pid"
  done
  return 0
}

# Predicates for wait_until.
exited() { ! alive "$1"; }
leads_group() { [[ $(pgid_of "$1") == "$1" ]]; }
group_empty() { [[ -z $(group_members "$1") ]]; }
port_closed() { ! listening "$1"; }
# stopped PORT PIDFILE: a server is down: nothing on PORT, no PIDFILE.
stopped() { ! listening "$1" && [[ ! -e $2 ]]; }

# Process group of PID.
pgid_of() {
  local line pgid
  read -r line <"/proc/$1/stat" 2>/dev/null || return 1
  read -r _ _ pgid _ <<<"${line##*) }"
  printf '%s\n' "$pgid"
}

show_output() {
  [[ -n $RUN_OUT && -f $RUN_OUT ]] || return 0
  printf '\n--- last 60 lines of the output of make run #%s (%s) ---\n' "$RUN_NO" "$RUN_OUT" >&2
  tail -n 60 "$RUN_OUT" >&2
  printf -- '--- end ---\n' >&2
}

fail() {
  printf '[smoke] FAILED: %s\n' "$*" >&2
  show_output
  exit 1
}

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.25 s.
wait_until() {
  local what=$1 secs=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for: $what"
    sleep 0.25
  done
}

# --- make run --------------------------------------------------------------------

start_make_run() {
  RUN_NO=$((RUN_NO + 1))
  RUN_OUT="$WORK/make-run-$RUN_NO.log"
  log "make run #$RUN_NO (API $API_ADDR, orchestrator $ORCH_ADDR, state $STATE)"
  # As in a terminal: make leads its own process group (setsid), so that one
  # SIGINT reaches it and all its children, and SIGINT has its default
  # disposition. Without that, bash would start this background job with
  # SIGINT ignored, make and run.sh would inherit that, and run.sh's Ctrl-C
  # trap would silently never fire. `trap -` is not enough: when this script
  # itself was started with SIGINT ignored (e.g. `nohup make test &`), bash
  # cannot reset it, so `env --default-signal` does.
  (
    trap - INT QUIT
    INVENTIV_API_ADDR=$API_ADDR INVENTIV_ORCHESTRATOR_ADDR=$ORCH_ADDR INVENTIV_METRICS_ADDR=$METRICS_ADDR \
      INVENTIV_ORCHESTRATOR_METRICS_ADDR=$ORCH_METRICS_ADDR \
      INVENTIV_MOCK_FIRST_ADDRESS=$MOCK_FIRST_ADDRESS \
      exec env --default-signal=INT,QUIT setsid make run </dev/null >"$RUN_OUT" 2>&1
  ) &
  MAKE_PID=$!
  # setsid runs make in place (we are not a group leader), so make's pid is
  # the group id; wait for the exec to have happened.
  wait_until "make run #$RUN_NO to lead its own process group" 10 \
    leads_group "$MAKE_PID"
}

banner_printed() {
  alive "$MAKE_PID" || fail "make run #$RUN_NO exited before printing its banner"
  grep -q '^  Ctrl-C stops everything\.' "$RUN_OUT"
}

# banner_field LABEL: the value printed after "  LABEL" in the banner.
banner_field() {
  sed -n "s/^  $1 \{2,\}\([^ ].*\)\$/\1/p" "$RUN_OUT" | head -n 1
}

wait_for_banner() {
  local t=$SECONDS
  wait_until "the banner of make run #$RUN_NO" "$TIMEOUT_SECS" banner_printed
  grep -q '^  Inventiv Agents is running' "$RUN_OUT" || fail "the banner does not say 'Inventiv Agents is running'"
  log "banner after $((SECONDS - t))s"
  ADMIN_EMAIL=$(banner_field 'Admin e-mail')
  ADMIN_PASSWORD=$(banner_field 'Admin password')
  [[ -n $ADMIN_EMAIL ]] || fail "no 'Admin e-mail' line in the banner"
  [[ -n $ADMIN_PASSWORD ]] || fail "no 'Admin password' line in the banner"
  # The line under the password says where it comes from.
  PASSWORD_ORIGIN=$(grep -A1 '^  Admin password ' "$RUN_OUT" | sed -n '2s/^ *(\(.*\))$/\1/p')
}

# Sends SIGINT to the group of make run, waits until every process of the group
# has exited, and checks that the ports are closed and the services stopped.
stop_make_run() {
  local pgid=$MAKE_PID status t=$SECONDS
  log "Ctrl-C (SIGINT to process group $pgid)"
  kill -INT -- "-$pgid" 2>/dev/null || true
  wait_until "make run #$RUN_NO to exit after SIGINT" 90 exited "$MAKE_PID"
  if wait "$MAKE_PID"; then status=0; else status=$?; fi
  MAKE_PID=""
  log "make run exited with status $status after $((SECONDS - t))s"
  wait_until "every process of group $pgid to exit" 30 group_empty "$pgid"
  wait_until "the API port $API_ADDR to close" 30 port_closed "${API_ADDR##*:}"
  wait_until "the orchestrator port $ORCH_ADDR to close" 30 port_closed "${ORCH_ADDR##*:}"
  # Ctrl-C must take run.sh's INT trap, not the "a process exited on its
  # own" path (which exits 1 and shows log tails as if something crashed).
  if grep -q 'exited with status .*; stopping everything' "$RUN_OUT"; then
    fail "on Ctrl-C, make run reported a process exit instead of stopping on the signal"
  fi
  grep -q 'stopping inventiv-api and inventiv-orchestrator' "$RUN_OUT" \
    || fail "make run did not say it stopped the API and the orchestrator"
  # A graceful shutdown, not run.sh's SIGKILL after 15 s.
  if grep -q 'did not stop within' "$RUN_OUT"; then
    fail "a process ignored Ctrl-C and had to be killed"
  fi
  grep -q '^\[api\] .*inventiv-api stopped' "$RUN_OUT" \
    || fail "inventiv-api did not log its graceful shutdown ('inventiv-api stopped')"
  grep -q '^\[orchestrator\] .*inventiv-orchestrator stopped' "$RUN_OUT" \
    || fail "inventiv-orchestrator did not log its graceful shutdown ('inventiv-orchestrator stopped')"
  ((status == 130)) || fail "make run exited with status $status after Ctrl-C, expected 130 (killed by SIGINT)"
  check_services_stopped
  local left
  left=$(processes_mentioning "$STATE")
  [[ -z $left ]] || fail "after Ctrl-C, processes still mention $STATE: $(describe_pids "$left")"
  log "no process mentions $STATE"
}

# pid and command line of each pid of the list, for failure messages.
describe_pids() {
  local pid
  for pid in $1; do
    printf '\n  %s %s' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
  done
}

check_services_stopped() {
  local pg_port redis_port
  pg_port=$(tr -dc '0-9' <"$STATE/postgres.port" 2>/dev/null || true)
  redis_port=$(tr -dc '0-9' <"$STATE/redis.port" 2>/dev/null || true)
  [[ -n $pg_port ]] || fail "no $STATE/postgres.port: was the private PostgreSQL started?"
  [[ -n $redis_port ]] || fail "no $STATE/redis.port: was the private Redis started?"
  wait_until "the private PostgreSQL (port $pg_port) to stop" 30 \
    stopped "$pg_port" "$STATE/postgres/postmaster.pid"
  wait_until "the private Redis (port $redis_port) to stop" 30 \
    stopped "$redis_port" "$STATE/run/redis.pid"
  log "API, orchestrator, PostgreSQL ($pg_port) and Redis ($redis_port) are stopped"
}

# --- HTTP --------------------------------------------------------------------------

# http METHOD PATH [JSON]: sets STATUS, BODY and CTYPE. Uses $TOKEN when set.
http() {
  local method=$1 path=$2 data=${3:-} out="$WORK/body" hdr="$WORK/headers"
  local args=(-sS --noproxy '*' --max-time 20 -X "$method" -o "$out" -D "$hdr" -w '%{http_code}')
  [[ -n ${TOKEN:-} ]] && args+=(-H "authorization: Bearer $TOKEN")
  [[ -n $data ]] && args+=(-H 'content-type: application/json' --data-binary "$data")
  STATUS=$(curl "${args[@]}" "$BASE_URL$path") || STATUS="curl-failed"
  BODY=$(cat "$out" 2>/dev/null || true)
  CTYPE=$(sed -n 's/^content-type: *//Ip' "$hdr" 2>/dev/null | tr -d '\r' | tail -n 1)
}

# expect STATUS WHAT: fails unless the last request answered STATUS.
expect() {
  [[ $STATUS == "$1" ]] || fail "$2: expected HTTP $1, got $STATUS: ${BODY:0:500}"
}

json_string() {
  sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" <<<"$BODY" | head -n 1
}

# json EXPR: the Python expression EXPR evaluated on the JSON document d of
# $BODY; strings as they are, anything else as JSON.
json() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1], {"d": d})
print(v if isinstance(v, str) else json.dumps(v))
' "$1" <<<"$BODY"
}

login() {
  TOKEN=""
  local email password
  email=$(json_escape "$ADMIN_EMAIL")
  password=$(json_escape "$ADMIN_PASSWORD")
  http POST /auth/login "{\"email\":\"$email\",\"password\":\"$password\"}"
  expect 200 "POST /auth/login with the printed credentials"
  TOKEN=$(json_string access_token)
  [[ -n $TOKEN ]] || fail "POST /auth/login: no access_token in ${BODY:0:300}"
  log "logged in as $ADMIN_EMAIL"
}

json_escape() {
  local s=${1//\\/\\\\}
  printf '%s' "${s//\"/\\\"}"
}

# --- secrets -------------------------------------------------------------------------

# Pids of the running binary named $1 (inventiv-api, inventiv-orchestrator)
# in the process group of make run.
group_binary() {
  local pid
  for pid in $(group_members "$MAKE_PID"); do
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */"$1" ]] && printf '%s\n' "$pid"
  done
  return 0
}

# check_secrets: files, process environments, and tokens (see the header).
check_secrets() {
  local name file mode pid bin envs
  for name in jwt-secret encryption-key; do
    file=$STATE/secrets/$name
    [[ -s $file ]] || fail "make run did not generate $file"
    mode=$(stat -c %a "$file")
    [[ $mode == 600 ]] || fail "$file has mode $mode, expected 600"
  done
  grep -rqF -- "$(cat "$STATE/secrets/jwt-secret")" --include='*.rs' --include='*.sh' --include='*.yml' . \
    && fail "the generated JWT secret appears in the source code"
  for bin in inventiv-api inventiv-orchestrator; do
    pid=$(group_binary "$bin" | head -n 1)
    [[ -n $pid ]] || fail "no $bin process under make run"
    envs=$(tr '\0' '\n' <"/proc/$pid/environ")
    grep -qx "INVENTIV_ENCRYPTION_KEY_FILE=$STATE/secrets/encryption-key" <<<"$envs" \
      || fail "$bin does not read the generated credentials key"
    grep -q '^INVENTIV_INSECURE_DEVELOPMENT=' <<<"$envs" \
      && fail "$bin runs with INVENTIV_INSECURE_DEVELOPMENT"
    grep -q '^INVENTIV_\(JWT_SECRET\|ENCRYPTION_KEY\)=' <<<"$envs" \
      && fail "$bin has a secret in its environment (expected *_FILE)"
  done
  grep -qx "INVENTIV_JWT_SECRET_FILE=$STATE/secrets/jwt-secret" \
    < <(tr '\0' '\n' <"/proc/$(group_binary inventiv-api | head -n 1)/environ") \
    || fail "inventiv-api does not read the generated JWT secret"
  http GET /auth/me
  expect 200 "GET /auth/me"
  local sub sid org out
  sub=$(json "d['user']['id']")
  sid=$(json "d['session_id']")
  org=$(json "d['current_organization']['id']")
  out=$(python3 - "$REPO_ROOT" "$STATE/secrets/jwt-secret" "$sub" "$sid" "$org" <<'PY'
import base64, hashlib, hmac, json, pathlib, re, sys, time
root, secret_file, sub, sid, org = sys.argv[1:]
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def token(secret):
    now = int(time.time())
    claims = {"sub": sub, "sid": sid, "org": org, "iss": "inventiv", "aud": "inventiv-api",
              "iat": now, "exp": now + 600}
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + b64(sig)
consts = set()
pat_const = re.compile(r'const\s+[A-Z0-9_]+\s*:\s*&str\s*=\s*"([^"\\]{8,})"')
pat_named = re.compile(r'(?i)[A-Z0-9_]*(?:SECRET|KEY|TOKEN|PASSWORD)[A-Z0-9_]*["\']?\s*[:=,]\s*\(?\s*["\']([^"\'$\\ ]{8,})["\']')
for pattern in ("*.rs", "*.sh", "*.yml"):
    for f in pathlib.Path(root).rglob(pattern):
        if any(p in f.parts for p in ("target", "node_modules", ".local")):
            continue
        text = f.read_text(errors="replace")
        consts.update(pat_const.findall(text))
        consts.update(pat_named.findall(text))
print("GOOD " + token(pathlib.Path(secret_file).read_text().strip()))
for c in sorted(consts):
    print("CONST " + token(c))
PY
  ) || fail "could not forge the test tokens"
  local good forged n=0
  good=$(sed -n 's/^GOOD //p' <<<"$out")
  [[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -H "authorization: Bearer $good" "$BASE_URL/auth/me") == 200 ]] \
    || fail "a token signed with the generated JWT secret is refused: the API does not use it"
  while read -r forged; do
    n=$((n + 1))
    [[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -H "authorization: Bearer $forged" "$BASE_URL/auth/me") == 401 ]] \
      || fail "a token signed with a constant of the source code was accepted (constant #$n)"
  done < <(sed -n 's/^CONST //p' <<<"$out")
  ((n >= 2)) || fail "only $n constants found in the source code: the scan is broken"
  log "random secrets in $STATE/secrets (600) used by the API and the orchestrator; tokens signed with $n source constants refused"
}

# --- mock provider -------------------------------------------------------------------

# demo_deploy N: scripts/demo-deploy.sh with the credentials of the banner;
# sets INSTANCE_ID, INSTANCE_IP, ORGANIZATION_ID and VM_DIR, switches our
# session to its organization and checks the instance is ready at 100 %.
demo_deploy() {
  local n=$1 out="$WORK/demo-$1.log" t=$SECONDS
  log "deploy #$n: scripts/demo-deploy.sh (deadline ${DEPLOY_TIMEOUT_SECS}s)"
  if ! INVENTIV_API_ADDR=$API_ADDR INVENTIV_ADMIN_EMAIL=$ADMIN_EMAIL INVENTIV_ADMIN_PASSWORD=$ADMIN_PASSWORD \
    "$REPO_ROOT/scripts/demo-deploy.sh" --timeout "$DEPLOY_TIMEOUT_SECS" --env-out "$WORK/demo.env" >"$out" 2>&1; then
    printf '\n--- output of scripts/demo-deploy.sh ---\n' >&2
    cat "$out" >&2
    printf -- '--- last lines of %s ---\n' "$STATE/logs/orchestrator.log" >&2
    tail -n 40 "$STATE/logs/orchestrator.log" >&2 || true
    fail "deploy #$n: scripts/demo-deploy.sh failed"
  fi
  # shellcheck disable=SC1091 # written by demo-deploy.sh
  source "$WORK/demo.env"
  grep -q 'is ready on the mock provider' "$out" || fail "deploy #$n: no summary in the output of demo-deploy.sh"
  grep -Eq 'answered \([0-9]+ prompt \+ [1-9][0-9]* completion tokens\)' "$out" \
    || fail "deploy #$n: the chat completion did not answer: $(cat "$out")"
  http PUT /organizations/current "{\"organization_id\":\"$ORGANIZATION_ID\"}"
  expect 200 "PUT /organizations/current (the Demo organization)"
  TOKEN=$(json_string access_token)
  http GET "/instances/$INSTANCE_ID"
  expect 200 "GET /instances/$INSTANCE_ID"
  [[ $(json "d['status']") == ready ]] || fail "deploy #$n: instance $INSTANCE_ID is not ready: ${BODY:0:500}"
  [[ $(json "d['progress']") == 100 ]] || fail "deploy #$n: instance $INSTANCE_ID is ready at progress $(json "d['progress']"), expected 100"
  VM_DIR=$(vm_dir_of "$INSTANCE_ID")
  [[ -n $VM_DIR ]] || fail "deploy #$n: no VM of instance $INSTANCE_ID in $STATE/mock-vms"
  [[ -n $(processes_mentioning "$VM_DIR") ]] || fail "deploy #$n: no process mentions $VM_DIR (sshd, agent)"
  log "deploy #$n: instance $INSTANCE_ID ready (100 %) on $INSTANCE_IP after $((SECONDS - t))s, the model answered"
}

# The directory of the mock VM of instance $1 (from its vm.json), if any.
vm_dir_of() {
  python3 - "$STATE/mock-vms" "$1" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*/vm.json")):
    try:
        if json.loads(f.read_text()).get("instance_id") == sys.argv[2]:
            print(f.parent)
    except (OSError, ValueError):
        pass
PY
}

instance_status_is() {
  http GET "/instances/$1"
  [[ $STATUS == 200 && $(json "d['status']") == "$2" ]]
}

# Nothing listens on the address $1 (a mock VM's).
address_free() {
  [[ -z $(ss -Hltn "src $1" 2>/dev/null) ]]
}

# terminate: DELETE the instance of demo_deploy, wait for `terminated`, check
# that its VM directory and every process mentioning it are gone.
terminate() {
  local t=$SECONDS left
  http DELETE "/instances/$INSTANCE_ID"
  expect 202 "DELETE /instances/$INSTANCE_ID"
  wait_until "instance $INSTANCE_ID to be terminated" 60 instance_status_is "$INSTANCE_ID" terminated
  [[ $(json "d['terminated_at']") != null ]] || fail "terminated instance $INSTANCE_ID has no terminated_at"
  wait_until "the VM directory $VM_DIR to be removed" 10 test ! -e "$VM_DIR"
  left=$(processes_mentioning "$VM_DIR")
  [[ -z $left ]] || fail "processes of the terminated VM survive: $(describe_pids "$left")"
  if command -v ss >/dev/null; then
    wait_until "nothing to listen on $INSTANCE_IP any more" 10 address_free "$INSTANCE_IP"
  fi
  log "instance $INSTANCE_ID terminated after $((SECONDS - t))s: VM directory and processes gone"
}

# --- cleanup -----------------------------------------------------------------------

cleanup() {
  local rc=$? pgid i
  trap '' INT TERM
  trap - EXIT
  set +e
  if [[ -n $MAKE_PID ]]; then
    pgid=$MAKE_PID
    log "cleanup: stopping make run (process group $pgid)"
    kill -INT -- "-$pgid" 2>/dev/null
    for ((i = 0; i < 600; i++)); do
      [[ -z $(group_members "$pgid") ]] && break
      ((i == 300)) && kill -TERM -- "-$pgid" 2>/dev/null
      ((i == 450)) && kill -KILL -- "-$pgid" 2>/dev/null
      sleep 0.1
    done
    wait "$MAKE_PID" 2>/dev/null
  fi
  # Whatever run.sh could not stop (killed before its cleanup).
  stop_mock_vms "$STATE/mock-vms"
  if [[ ${SMOKE_KEEP_STATE:-0} == 1 ]]; then
    INVENTIV_STATE_DIR=$STATE "$REPO_ROOT/scripts/services.sh" down
    log "kept $STATE and $WORK (SMOKE_KEEP_STATE=1)"
  else
    INVENTIV_STATE_DIR=$STATE "$REPO_ROOT/scripts/services.sh" purge 2>&1 \
      | sed 's/^/[smoke] /' >&2
    rm -rf -- "$STATE"
    if ((rc == 0)); then
      rm -rf -- "$WORK"
    else
      log "the output of make run is kept in $WORK"
    fi
  fi
  if ((rc == 0)); then
    printf '[smoke] make run smoke test passed (%ss)\n' "$((SECONDS - T0))" >&2
  else
    printf '[smoke] make run smoke test FAILED (exit %s, %ss)\n' "$rc" "$((SECONDS - T0))" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the test --------------------------------------------------------------------

command -v curl >/dev/null || die "curl is required"
command -v setsid >/dev/null || die "setsid (util-linux) is required"

API_PORT=$(free_port 8001 8003)
ORCH_PORT=$(free_port 8001 8003 "$API_PORT")
METRICS_PORT=$(free_port 8001 8002 8003 8004 "$API_PORT" "$ORCH_PORT")
METRICS_ADDR="127.0.0.1:$METRICS_PORT"
ORCH_METRICS_ADDR="127.0.0.1:$(free_port 8001 8002 8003 8004 "$API_PORT" "$ORCH_PORT" "$METRICS_PORT")"
API_ADDR="127.0.0.1:$API_PORT"
ORCH_ADDR="127.0.0.1:$ORCH_PORT"
BASE_URL="http://$API_ADDR"
# Mock VMs on their own /24, away from a developer's `make run` (127.0.10.x).
MOCK_FIRST_ADDRESS="127.0.$((100 + RANDOM % 100)).1"

# Build first, outside the banner deadline: a rebuild after a code change can
# take minutes on a small machine; `make run` then finds the binaries fresh.
log "cargo build --bin inventiv-api --bin inventiv-orchestrator --bin inventiv-mock-engine"
cargo build --bin inventiv-api --bin inventiv-orchestrator --bin inventiv-mock-engine

# --- first run: fresh state ---
start_make_run
wait_for_banner
FIRST_PASSWORD=$ADMIN_PASSWORD
[[ $ADMIN_EMAIL == admin@inventiv.local ]] || fail "admin e-mail is '$ADMIN_EMAIL', expected the default admin@inventiv.local"
[[ $PASSWORD_ORIGIN == "generated now, kept in $STATE/admin-password" ]] \
  || fail "first run: password origin is '$PASSWORD_ORIGIN', expected 'generated now, kept in $STATE/admin-password'"
grep -Eq '^  Database +postgres://postgres@127\.0\.0\.1:[0-9]+/inventiv$' "$RUN_OUT" \
  || fail "the banner does not show the private PostgreSQL"
[[ -f $STATE/postgres/PG_VERSION ]] || fail "no PostgreSQL cluster in $STATE/postgres"

TOKEN=""
http GET /healthz
expect 200 "GET /healthz"
http GET /readyz
expect 200 "GET /readyz"
http GET /openapi.json
expect 200 "GET /openapi.json"
[[ $BODY == *'"paths"'* ]] || fail "GET /openapi.json: no \"paths\" in the document"
http GET /docs/
expect 200 "GET /docs/"
[[ $CTYPE == text/html* ]] || fail "GET /docs/: content-type '$CTYPE', expected text/html"
http GET /metrics
expect 404 "GET /metrics on the public API port"
[[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://$METRICS_ADDR/metrics") == 200 ]] \
  || fail "GET http://$METRICS_ADDR/metrics (INVENTIV_METRICS_ADDR) did not answer 200"
[[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://$ORCH_ADDR/metrics") == 404 ]] \
  || fail "GET http://$ORCH_ADDR/metrics (the orchestrator's probes) did not answer 404"
[[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://$ORCH_METRICS_ADDR/metrics") == 200 ]] \
  || fail "GET http://$ORCH_METRICS_ADDR/metrics (INVENTIV_ORCHESTRATOR_METRICS_ADDR) did not answer 200"
log "/healthz, /readyz, /openapi.json and /docs/ answer; /metrics only on $METRICS_ADDR and $ORCH_METRICS_ADDR"

login
http GET /auth/me
expect 200 "GET /auth/me"
check_secrets
SLUG="smoke-$(date +%s)-$RANDOM"
http POST /organizations "{\"name\":\"Smoke test\",\"slug\":\"$SLUG\"}"
expect 201 "POST /organizations"
[[ $(json_string slug) == "$SLUG" ]] || fail "POST /organizations: slug not echoed: ${BODY:0:300}"
log "created organization $SLUG"

demo_deploy 1
terminate
demo_deploy 2
KEPT_ID=$INSTANCE_ID
KEPT_VM_DIR=$VM_DIR
KEPT_IP=$INSTANCE_IP
KEPT_ORG=$ORGANIZATION_ID

stop_make_run
[[ -d $KEPT_VM_DIR ]] || fail "Ctrl-C removed the VM directory $KEPT_VM_DIR (it must stay)"
if command -v ss >/dev/null; then
  address_free "$KEPT_IP" || fail "after Ctrl-C something still listens on $KEPT_IP: $(ss -Hltnp "src $KEPT_IP")"
fi
log "the VM of instance $KEPT_ID is stopped, its directory kept"

# --- second run: same state ---
start_make_run
wait_for_banner
[[ $ADMIN_PASSWORD == "$FIRST_PASSWORD" ]] \
  || fail "second run printed another password ('$ADMIN_PASSWORD', first run: '$FIRST_PASSWORD')"
[[ $PASSWORD_ORIGIN == "kept in $STATE/admin-password" ]] \
  || fail "second run: password origin is '$PASSWORD_ORIGIN', expected 'kept in $STATE/admin-password'"
login
http GET /organizations
expect 200 "GET /organizations"
[[ $BODY == *"\"slug\":\"$SLUG\""* ]] || fail "GET /organizations after a restart does not list $SLUG: ${BODY:0:500}"
log "after the restart the same password logs in and $SLUG is still there"

http PUT /organizations/current "{\"organization_id\":\"$KEPT_ORG\"}"
expect 200 "PUT /organizations/current (the Demo organization) after the restart"
TOKEN=$(json_string access_token)
http GET "/instances/$KEPT_ID"
expect 200 "GET /instances/$KEPT_ID after the restart"
log "after the restart instance $KEPT_ID is listed ($(json "d['status']"))"
INSTANCE_ID=$KEPT_ID VM_DIR=$KEPT_VM_DIR INSTANCE_IP=$KEPT_IP
terminate

stop_make_run
