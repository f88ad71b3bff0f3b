# shellcheck shell=bash
# The benches' shared part, sourced by scripts/bench.sh after scripts/lib.sh:
# the settings every bench reads; processes started, pinned to a core and
# stopped; wrk runs and their figures; CPU and memory from /proc; the stack
# (PostgreSQL, Redis, inventiv-api and inventiv-orchestrator from release
# builds) and calls to its API; the summary's lines with MET / NOT MET.
# It defines variables and functions and starts nothing: scripts/bench.sh
# makes WORK and sets the traps that call `cleanup`.

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WARMUP=${BENCH_WARMUP:-2s}
SERVER_CPU=0
LOAD_CPU=1
TARGET_DIR=$(abs_path "${CARGO_TARGET_DIR:-target}")
PIDS=()
SUMMARY=()

# Stops everything the benches started and deletes WORK; the EXIT trap.
cleanup() {
  local rc=$?
  trap '' INT TERM
  trap - EXIT
  set +e
  stack_down
  local pid
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
  exit "$rc"
}

# ------------------------------------------------------ processes and wrk

# pin CPU: sets PIN_CMD, the prefix that runs a command on that CPU alone
# (empty on a one-core machine, or when CPU is ""). taskset execs the
# command, so a background job's $! is the command's own pid.
pin() {
  PIN_CMD=()
  if ((PIN)) && [[ -n $1 ]]; then PIN_CMD=(taskset -c "$1"); fi
}

# True while PID runs (a zombie does not count).
alive() {
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null \
    && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# stop_pid PID: SIGTERM, 15 s to exit, then SIGKILL; forgets the pid.
stop_pid() {
  local pid=$1 i p keep=()
  [[ -n $pid ]] || return 0
  if kill -TERM "$pid" 2>/dev/null; then
    for ((i = 0; i < 150; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      warn "pid $pid did not stop within 15 s; killing it"
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# start_logged NAME MESSAGE CPU TIMEOUT COMMAND...: starts a process that
# logs JSON to stdout (into $WORK/NAME.log) on CPU ("" = not pinned), waits
# TIMEOUT seconds at most for its MESSAGE line and sets SERVER_ADDR (that
# line's addr) and STARTED_PID.
start_logged() {
  local name=$1 message=$2 cpu=$3 timeout=$4
  shift 4
  local log="$WORK/$name.log"
  pin "$cpu"
  LOG_FORMAT=json RUST_LOG=info "${PIN_CMD[@]+"${PIN_CMD[@]}"}" "$@" >"$log" 2>&1 &
  local pid=$! deadline=$((SECONDS + timeout)) line
  PIDS+=("$pid")
  STARTED_PID=$pid
  SERVER_ADDR=""
  while :; do
    line=$(grep -F "\"message\":\"$message\"" "$log" | head -1 || true)
    [[ -z $line ]] || break
    alive "$pid" || die "$name exited: $(tail -5 "$log")"
    ((SECONDS < deadline)) || die "$name did not log '$message' within $timeout s"
    sleep 0.05
  done
  SERVER_ADDR=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' <<<"$line")
}

# start_server NAME COMMAND...: starts a server on the server core that logs
# JSON to stdout, waits (10 s at most) for its `listening` line and sets
# SERVER_ADDR.
start_server() {
  local name=$1
  shift
  start_logged "$name" listening "$SERVER_CPU" 10 "$@"
}

# lua_post FILE JSON: a wrk script that POSTs JSON.
lua_post() {
  cat >"$1" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$2]]
EOF
}

# wrk_run CONNECTIONS DURATION URL LUA OUT: one wrk run (one thread, latency
# distribution) on the load core, its report in OUT.
wrk_run() {
  pin "$LOAD_CPU"
  "${PIN_CMD[@]+"${PIN_CMD[@]}"}" wrk -t1 -c"$1" -d"$2" --latency -s "$4" "$3" >"$5"
}

# wrk_check OUT: prints wrk's report; fails if any answer was not 2xx or a
# socket error occurred. Sets RPS (integer), REQUESTS, P50 and P99.
wrk_check() {
  local out=$1
  sed 's/^/    /' "$out" >&2
  if grep -qE 'Non-2xx|Socket errors' "$out"; then
    die "errors during the run (see above)"
  fi
  RPS=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$out")
  REQUESTS=$(awk '/ requests in / { print $1 }' "$out")
  P50=$(awk '$1 == "50%" { print $2 }' "$out")
  P99=$(awk '$1 == "99%" { print $2 }' "$out")
  [[ -n $RPS && -n $REQUESTS ]] || die "no Requests/sec in wrk's output"
}

# load URL LUA: warms up, then runs wrk; sets RPS and prints wrk's report.
# Fails if any answer was not 2xx or a socket error occurred.
load() {
  local url=$1 lua=$2 out="$WORK/wrk.out"
  wrk_run "$CONNECTIONS" "$WARMUP" "$url" "$lua" /dev/null
  wrk_run "$CONNECTIONS" "$DURATION" "$url" "$lua" "$out"
  wrk_check "$out"
}

report() {
  SUMMARY+=("$1")
  printf '%s\n' "$1"
}

# verdict OK: "MET" when the arithmetic expression OK holds, else "NOT MET".
verdict() {
  if (($1)); then printf 'MET'; else printf 'NOT MET'; fi
}

# Microseconds since the epoch (no fork).
now_us() {
  local t=$EPOCHREALTIME
  printf '%s\n' "${t//[^0-9]/}"
}

# ------------------------------------------------------- CPU and memory

CLK_TCK=$(getconf CLK_TCK)

# cpu_ticks PID: user + system clock ticks PID has used (0 once it is gone).
cpu_ticks() {
  local s f
  read -r s <"/proc/$1/stat" 2>/dev/null || {
    echo 0
    return 0
  }
  s=${s##*) } # the fields after "pid (comm) ", from the state (field 3) on
  read -ra f <<<"$s"
  echo $((f[11] + f[12]))
}

# tree_ticks PID: PID's ticks, those of its children it has reaped and those
# of its live children (PostgreSQL: the postmaster and its backends).
tree_ticks() {
  local s f total c
  read -r s <"/proc/$1/stat" 2>/dev/null || {
    echo 0
    return 0
  }
  s=${s##*) }
  read -ra f <<<"$s"
  total=$((f[11] + f[12] + f[13] + f[14]))
  for c in $(ps -o pid= --ppid "$1"); do total=$((total + $(cpu_ticks "$c"))); done
  echo "$total"
}

# rss_mib PID: resident memory (VmRSS) in MiB.
rss_mib() {
  awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

# pct TICKS MICROSECONDS: CPU use in % of one core.
pct() {
  awk -v t="$1" -v hz="$CLK_TCK" -v us="$2" 'BEGIN { printf "%.1f", t / hz / (us / 1e6) * 100 }'
}

# ms_per TICKS COUNT: CPU milliseconds per item.
ms_per() {
  awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.3f", (n > 0 ? t / hz * 1000 / n : 0) }'
}

# ------------------------------------------- the stack: services, API, orchestrator

STACK_DIR=""           # $WORK/<bench> while a stack is up
STACK_BUILT=0
STACK_DB_CREATED=""    # a database created on a configured server, dropped at the end
STACK_DB_ADMIN_URL=""  # the configured DATABASE_URL it was created from
STACK_REDIS_SHARED=0   # 1: a configured Redis, whose keys under REDIS_PREFIX we delete
API="" API_PID="" ORCH_PID="" PG_PID="" REDIS_PID="" DB_URL="" REDIS="" REDIS_PREFIX="" PG_DURABILITY=""
STACK_JWT_SECRET="" STACK_ENCRYPTION_KEY="" # the stack's random secrets (its API replicas share them)
API_CPU=""             # the core inventiv-api is pinned to ("" = not pinned)
API_ENV=()             # VAR=VALUE... added to inventiv-api's environment by stack_up
PSQL_BIN=""
ADMIN_EMAIL=admin@inventiv.local
ADMIN_PASSWORD=""

# psql_db ARGS...: psql on the stack's database.
psql_db() {
  "$PSQL_BIN" -X -q -v ON_ERROR_STOP=1 -d "$DB_URL" "$@"
}

# url_with_db URL NAME: URL with its database replaced by NAME.
url_with_db() {
  local url=$1 query=""
  if [[ $url == *\?* ]]; then
    query="?${url#*\?}"
    url=${url%%\?*}
  fi
  local rest=${url#*://}
  if [[ $rest == */* ]]; then url=${url%/*}; fi
  printf '%s/%s%s\n' "$url" "$2" "$query"
}

# A 127.0.x.1 with nothing listening on 127.0.x.* (mock VMs get their
# addresses from there on), from 127.0.90.1 up.
free_loopback() {
  local x
  if ! command -v ss >/dev/null; then
    printf '127.0.90.1\n'
    return 0
  fi
  for ((x = 90; x < 130; x++)); do
    if ! ss -Hltn | awk '{ print $4 }' | grep -q "^127\.0\.$x\."; then
      printf '127.0.%s.1\n' "$x"
      return 0
    fi
  done
  die "no free 127.0.x.0/24 range between 127.0.90 and 127.0.129"
}

# The pids of the processes of the mock VMs under DIR and their descendants:
# a command line naming DIR (each VM's sshd) or the INVENTIV_MOCK_VM=<vm>
# marker in the environment (what runs through a VM's SSH), as the mock
# provider's own reaper finds them.
vm_processes() {
  local dir=$1 marks="$WORK/vm-marks" vm
  [[ -d $dir ]] || return 0
  : >"$marks"
  for vm in "$dir"/*; do
    [[ -e $vm ]] && printf 'INVENTIV_MOCK_VM=%s\n' "${vm##*/}" >>"$marks"
  done
  {
    grep -laF -- "$dir" /proc/[0-9]*/cmdline 2>/dev/null || true
    if [[ -s $marks ]]; then grep -laF -f "$marks" /proc/[0-9]*/environ 2>/dev/null || true; fi
  } | sed -n 's#^/proc/\([0-9]*\)/.*#\1#p' | sort -u >"$WORK/vm-hits"
  ps -eo pid=,ppid= | awk -v me=$$ -v sub_=$BASHPID '
    NR == FNR { hit[$1] = 1; next }
    { parent[$1] = $2 }
    END {
      do {
        grew = 0
        for (p in parent) if (!(p in hit) && (parent[p] in hit)) { hit[p] = 1; grew = 1 }
      } while (grew)
      for (p in hit) if (p != me && p != sub_ && p != 1 && (p in parent)) print p
    }' "$WORK/vm-hits" -
}

# Stops what is left of the mock VMs under DIR (normally nothing: the bench
# terminates its instances; this is for a bench that failed half-way).
reap_mock_vms() {
  local dir=$1 round pids
  for round in 1 2 3; do
    pids=$(vm_processes "$dir" | tr '\n' ' ')
    [[ -n ${pids// /} ]] || return 0
    warn "stopping leftover mock VM processes: $pids"
    # shellcheck disable=SC2086 # a list of pids
    kill -TERM $pids 2>/dev/null
    sleep $((round))
    pids=$(vm_processes "$dir" | tr '\n' ' ')
    # shellcheck disable=SC2086
    [[ -n ${pids// /} ]] && kill -KILL $pids 2>/dev/null
  done
}

build_stack() {
  ((STACK_BUILT)) && return 0
  log "building inventiv-api, inventiv-orchestrator, the mock engine and the SSE bench client (release)"
  cargo build --release --quiet --bin inventiv-api --bin inventiv-orchestrator --bin inventiv-mock-engine --bin inventiv-sse-bench
  STACK_BUILT=1
}

# stack_up NAME [VAR=VALUE...]: PostgreSQL + Redis (scripts/services.sh, state
# in $WORK/NAME/services), then inventiv-api (on API_CPU) and
# inventiv-orchestrator (unpinned, with VAR=VALUE... added to its
# environment; API_ENV's to inventiv-api's), release builds on ports the
# kernel picks. Sets API (base URL), API_PID, ORCH_PID, DB_URL, PG_PID (the
# private postmaster, "" for a configured server), REDIS_PID (the private
# redis-server, "" for a configured one), ADMIN_PASSWORD.
stack_up() {
  local name=$1
  shift
  build_stack
  STACK_DIR="$WORK/$name"
  local svc="$STACK_DIR/services" app="$STACK_DIR/app" out started
  mkdir -p "$svc" "$app"
  out=$(INVENTIV_STATE_DIR=$svc "$REPO_ROOT/scripts/services.sh" up) || die "scripts/services.sh up failed"
  DB_URL=$(eval "$out" && printf '%s' "$DATABASE_URL")
  REDIS=$(eval "$out" && printf '%s' "$REDIS_URL")
  started=$(eval "$out" && printf '%s' "${INVENTIV_STARTED_SERVICES:-}")
  PSQL_BIN=$(find_psql)
  PG_PID=""
  if [[ " $started " == *" postgres "* ]]; then
    PG_PID=$(head -n 1 "$svc/postgres/postmaster.pid" | tr -dc '0-9')
  else
    local db="inventiv_bench_${name}_$$"
    log "configured DATABASE_URL: creating the database $db for the bench"
    "$PSQL_BIN" -X -q -v ON_ERROR_STOP=1 -d "$DB_URL" -c "CREATE DATABASE $db" \
      || die "cannot create a database on the configured server (the role needs CREATEDB)"
    STACK_DB_ADMIN_URL=$DB_URL
    STACK_DB_CREATED=$db
    DB_URL=$(url_with_db "$DB_URL" "$db")
  fi
  REDIS_PID=""
  if [[ " $started " == *" redis "* ]]; then
    REDIS_PID=$(tr -dc '0-9' <"$svc/run/redis.pid")
  else
    STACK_REDIS_SHARED=1
  fi
  REDIS_PREFIX="inventiv-bench-$$-$name:"
  ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
  # Random secrets, as make run generates (the built-in ones are refused).
  STACK_JWT_SECRET=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')
  STACK_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

  start_api "$name/api" "$app" "$API_CPU" "${API_ENV[@]+"${API_ENV[@]}"}"
  API_PID=$STARTED_PID
  API="http://$(client_addr "$SERVER_ADDR")"
  [[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 5 "$API/readyz") == 200 ]] \
    || die "$API/readyz is not 200"

  local bundle
  bundle=$("$REPO_ROOT/scripts/agent-bundle.sh" --out "$WORK/agent") || die "scripts/agent-bundle.sh failed"
  bundle=${bundle#*  }
  start_logged "$name/orchestrator" "inventiv-orchestrator listening" "" 60 \
    env DATABASE_URL="$DB_URL" REDIS_URL="$REDIS" INVENTIV_REDIS_PREFIX="$REDIS_PREFIX" \
    INVENTIV_STATE_DIR="$app" INVENTIV_ORCHESTRATOR_ADDR=127.0.0.1:0 INVENTIV_ORCHESTRATOR_METRICS_ADDR=127.0.0.1:0 INVENTIV_ENCRYPTION_KEY="$STACK_ENCRYPTION_KEY" \
    INVENTIV_ORCHESTRATOR_NAME="bench-orchestrator-$$" INVENTIV_CONTROL_PLANE_URL="$API" \
    INVENTIV_MOCK_ENGINE="$TARGET_DIR/release/inventiv-mock-engine" \
    INVENTIV_AGENT_BUNDLE="$bundle" INVENTIV_BOOTSTRAP_SCRIPT="$REPO_ROOT/inventiv-worker/bootstrap.sh" \
    "$@" "$TARGET_DIR/release/inventiv-orchestrator"
  ORCH_PID=$STARTED_PID
  # It listens before it has set up its providers (SSH key first).
  local deadline=$((SECONDS + 30))
  until [[ -s $app/ssh/keypair/id_ed25519.pub ]]; do
    alive "$ORCH_PID" || die "the orchestrator exited: $(tail -5 "$WORK/$name/orchestrator.log")"
    ((SECONDS < deadline)) || die "the orchestrator made no SSH key within 30 s"
    sleep 0.05
  done
  sleep 0.2
  PG_DURABILITY="$([[ -n $PG_PID ]] && echo private || echo configured) $(psql_db -tAc 'SHOW server_version' | cut -d' ' -f1), fsync $(psql_db -tAc 'SHOW fsync'), synchronous_commit $(psql_db -tAc 'SHOW synchronous_commit')"
  log "$name: inventiv-api on $API; PostgreSQL $PG_DURABILITY; Redis $([[ $STACK_REDIS_SHARED == 1 ]] && echo configured || echo private)"
}

# start_api NAME STATE_DIR CPU [VAR=VALUE...]: an inventiv-api (release) on
# the stack's database, Redis and secrets, with its own state dir and
# VAR=VALUE... added to its environment; sets STARTED_PID and SERVER_ADDR.
# stack_up starts the first; a bench may add replicas (stopped with
# stop_pid, or at exit).
start_api() {
  local name=$1 dir=$2 cpu=$3
  shift 3
  mkdir -p "$dir"
  start_logged "$name" "inventiv-api listening" "$cpu" 120 \
    env DATABASE_URL="$DB_URL" REDIS_URL="$REDIS" INVENTIV_REDIS_PREFIX="$REDIS_PREFIX" \
    INVENTIV_ENV=development INVENTIV_API_ADDR=127.0.0.1:0 INVENTIV_METRICS_ADDR=127.0.0.1:0 INVENTIV_STATE_DIR="$dir" \
    INVENTIV_ADMIN_EMAIL="$ADMIN_EMAIL" INVENTIV_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    INVENTIV_JWT_SECRET="$STACK_JWT_SECRET" INVENTIV_ENCRYPTION_KEY="$STACK_ENCRYPTION_KEY" \
    "$@" "${API_BIN:-$TARGET_DIR/release/inventiv-api}"
}

# Stops what stack_up started and deletes its state.
stack_down() {
  [[ -n $STACK_DIR ]] || return 0
  stop_pid "$ORCH_PID"
  stop_pid "$API_PID"
  ORCH_PID="" API_PID=""
  reap_mock_vms "$STACK_DIR/app/mock-vms"
  if [[ -n $STACK_DB_CREATED ]]; then
    "$PSQL_BIN" -X -q -d "$STACK_DB_ADMIN_URL" -c "DROP DATABASE IF EXISTS $STACK_DB_CREATED WITH (FORCE)" >&2 \
      || warn "could not drop the database $STACK_DB_CREATED"
    STACK_DB_CREATED=""
  fi
  if ((STACK_REDIS_SHARED)); then
    if command -v redis-cli >/dev/null; then
      redis-cli -u "$REDIS" --scan --pattern "$REDIS_PREFIX*" | xargs -r redis-cli -u "$REDIS" del >/dev/null \
        || warn "could not delete the Redis keys $REDIS_PREFIX*"
    else
      warn "no redis-cli: the keys $REDIS_PREFIX* stay in the configured Redis"
    fi
    STACK_REDIS_SHARED=0
  fi
  INVENTIV_STATE_DIR="$STACK_DIR/services" "$REPO_ROOT/scripts/services.sh" purge \
    || warn "scripts/services.sh purge failed for $STACK_DIR/services"
  STACK_DIR=""
}

# call METHOD PATH [JSON]: an API call (with TOKEN when set); sets CODE and BODY.
call() {
  local args=(-s --noproxy '*' --max-time 30 -o "$WORK/body" -w '%{http_code}' -X "$1" "$API$2")
  if [[ -n ${TOKEN:-} ]]; then args+=(-H "authorization: Bearer $TOKEN"); fi
  if (($# > 2)); then args+=(-H 'content-type: application/json' --data-binary "$3"); fi
  CODE=$(curl "${args[@]}") || CODE=000
  BODY=$(cat "$WORK/body" 2>/dev/null || true)
}

# expect CODE...: fails unless the last call answered one of them.
expect() {
  local c
  for c in "$@"; do [[ $CODE == "$c" ]] && return 0; done
  die "expected HTTP $* but got $CODE: $BODY"
}

# Admin login, a team organization switched to; sets TOKEN and ORG_ID.
# With "activate", the mock catalog items are activated for it.
api_team() {
  TOKEN=""
  call POST /auth/login "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}"
  expect 200
  TOKEN=$(jq -r .access_token <<<"$BODY")
  call POST /organizations '{"name":"Bench"}'
  expect 200 201
  ORG_ID=$(jq -r .id <<<"$BODY")
  call PUT /organizations/current "{\"organization_id\":\"$ORG_ID\"}"
  expect 200
  TOKEN=$(jq -r .access_token <<<"$BODY")
  [[ ${1:-} == activate ]] || return 0
  local kind_item
  for kind_item in provider/mock zone/8a1d0000-0000-4000-8000-000000000001 \
    instance_type/8a1e0000-0000-4000-8000-000000000001 model/8a1f0000-0000-4000-8000-000000000001; do
    call PUT "/organizations/current/activations/$kind_item" '{"technical":true,"economic":true}'
    expect 200
  done
}

# wait_status ID STATUS TIMEOUT_S: polls GET /instances/ID every 50 ms until
# STATUS; fails (with the action log) on a failed state or the timeout.
# Sets SEEN_US, when the status was seen.
wait_status() {
  local id=$1 want=$2 deadline=$(($(now_us) + $3 * 1000000)) status
  while :; do
    call GET "/instances/$id"
    expect 200
    status=$(jq -r .status <<<"$BODY")
    if [[ $status == "$want" ]]; then
      SEEN_US=$(now_us)
      return 0
    fi
    if [[ $status == *failed || ($(now_us) -gt $deadline) ]]; then
      printf '%s\n' "$BODY" >&2
      call GET "/instances/$id/actions"
      jq -r '.[] | "  \(.action_type) \(.status) \(.duration_ms // "-") ms \(.error_code // "") \(.error_message // "")"' <<<"$BODY" >&2 || true
      die "instance $id is $status, not $want (waited at most $3 s)"
    fi
    sleep 0.05
  done
}

# ------------------------------------------------------------- figures

# us DURATION: a wrk latency ("812.00us", "1.25ms", "2.00s") in microseconds.
us() {
  awk -v d="$1" 'BEGIN {
    n = d + 0; u = d; sub(/^[0-9.]+/, "", u)
    f = (u == "s" ? 1e6 : (u == "ms" ? 1e3 : (u == "m" ? 6e7 : 1)))
    printf "%d", n * f }'
}

# at_most VALUE MAX: "MET" when the decimal VALUE ≤ MAX, else "NOT MET".
at_most() {
  if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; then printf 'MET'; else printf 'NOT MET'; fi
}

# per_event MICROSECONDS EVENTS: CPU per SSE event, 2 decimals.
per_event() {
  awk -v u="$1" -v e="$2" 'BEGIN { printf "%.2f", (e > 0 ? u / e : 0) }'
}

# Other processes skew every figure: how busy the cores are (over 1 s, from
# /proc/stat) just before each bench, when nothing of ours runs.
busy() {
  local a b
  read -r a </proc/stat
  sleep 1
  read -r b </proc/stat
  BUSY=$(awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN {
    split(a, x); split(b, y); t = 0; i = 0
    for (k = 2; k <= 9; k++) t += y[k] - x[k]
    i = (y[5] - x[5]) + (y[6] - x[6])
    printf "%.2f", (t > 0 ? (t - i) / t * n : 0) }')
  if awk -v l="$BUSY" 'BEGIN { exit !(l >= 0.25) }'; then
    warn "other processes keep $BUSY cores busy before '$1': its figures are pessimistic"
  fi
  BUSIES+="${BUSIES:+, }$1 $BUSY"
}
