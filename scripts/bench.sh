#!/usr/bin/env bash
# `make bench`: benchmarks on this machine, each printing its figures with
# their target and MET / NOT MET. One run on one machine: figures, not
# statistics. A server under load is pinned to core 0 and the load generator
# (wrk, from Debian's package) to core 1, so a throughput figure means "on
# one core".
#
#   scripts/bench.sh                 every bench (see BENCHES below)
#   scripts/bench.sh mock_engine     only the benches named
#   BENCH_DURATION=5s BENCH_CONNECTIONS=128 scripts/bench.sh
#   BENCH_PROXY_DURATION=10s BENCH_PROXY_REPEAT=3 scripts/bench.sh proxy
#
#   mock_engine  the mock engine's non-streaming req/s and streamed chunks/s
#   deploy       POST /deployments -> instance ready on the mock provider, for
#                3 successive deployments (each, the median, and a per-step
#                breakdown of the median run), then terminates them
#   proxy        the data plane: the mock engine directly, through a bare hyper
#                proxy and through the API's /v1 (key auth, routing, the
#                worker's relay, durable metering), and through an API with
#                the in-memory metering (INVENTIV_USAGE_JOURNAL=off);
#                concurrency 1, 8, 64, streaming and not: req/s, p50, p99,
#                added latency, CPU per request and per SSE event, API
#                memory, and the cost of durability (durable - in-memory)
#   heartbeats   500 instances with worker tokens: (a) heartbeats/s the API
#                takes on one core, (b) the realistic load (500 instances
#                every 5 s): CPU and memory of the API and the orchestrator,
#                and no instance wrongly declared worker_dead
#
# deploy and heartbeats run the real stack from release builds: PostgreSQL
# and Redis from scripts/services.sh with a temporary state dir of their own
# (private servers; a configured DATABASE_URL gets a fresh database created
# and dropped by the bench, a configured REDIS_URL a key prefix of its own),
# then inventiv-api and inventiv-orchestrator on ports the kernel picks.
# Everything started is stopped, and its state deleted, when the bench ends.
# The private PostgreSQL is durable (fsync on) like a production one;
# INVENTIV_PG_FAST=1 turns fsync and synchronous commits off (see
# scripts/services.sh) to see what the API does without the disk.
#
# Add a bench: write a `bench_<name>` function that starts what it needs with
# `start_server` or `stack_up` (stopped at exit) and measures with `load` or
# `wrk_run`, then list <name> in BENCHES.
set -euo pipefail

LOG_TAG="bench"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

BENCHES=(mock_engine proxy deploy heartbeats)

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WARMUP=${BENCH_WARMUP:-2s}
SERVER_CPU=0
LOAD_CPU=1
TARGET_DIR=$(abs_path "${CARGO_TARGET_DIR:-target}")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/inventiv-bench.XXXXXX")
PIDS=()
SUMMARY=()

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
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
API="" API_PID="" ORCH_PID="" PG_PID="" DB_URL="" REDIS="" REDIS_PREFIX="" PG_DURABILITY=""
STACK_JWT_SECRET="" STACK_ENCRYPTION_KEY="" # the stack's random secrets (its API replicas share them)
API_CPU=""             # the core inventiv-api is pinned to ("" = not pinned)
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
  log "building inventiv-api, inventiv-orchestrator and the mock engine (release)"
  cargo build --release --quiet --bin inventiv-api --bin inventiv-orchestrator --bin inventiv-mock-engine
  STACK_BUILT=1
}

# stack_up NAME [VAR=VALUE...]: PostgreSQL + Redis (scripts/services.sh, state
# in $WORK/NAME/services), then inventiv-api (on API_CPU) and
# inventiv-orchestrator (unpinned, with VAR=VALUE... added to its
# environment), release builds on ports the kernel picks. Sets API (base
# URL), API_PID, ORCH_PID, DB_URL, PG_PID (the private postmaster, "" for a
# configured server), ADMIN_PASSWORD.
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
  [[ " $started " == *" redis "* ]] || STACK_REDIS_SHARED=1
  REDIS_PREFIX="inventiv-bench-$$-$name:"
  ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
  # Random secrets, as make run generates (the built-in ones are refused).
  STACK_JWT_SECRET=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')
  STACK_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

  start_api "$name/api" "$app" "$API_CPU"
  API_PID=$STARTED_PID
  API="http://$(client_addr "$SERVER_ADDR")"
  [[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 5 "$API/readyz") == 200 ]] \
    || die "$API/readyz is not 200"

  local bundle
  bundle=$("$REPO_ROOT/scripts/agent-bundle.sh" --out "$WORK/agent") || die "scripts/agent-bundle.sh failed"
  bundle=${bundle#*  }
  start_logged "$name/orchestrator" "inventiv-orchestrator listening" "" 60 \
    env DATABASE_URL="$DB_URL" REDIS_URL="$REDIS" INVENTIV_REDIS_PREFIX="$REDIS_PREFIX" \
    INVENTIV_STATE_DIR="$app" INVENTIV_ORCHESTRATOR_ADDR=127.0.0.1:0 INVENTIV_ENCRYPTION_KEY="$STACK_ENCRYPTION_KEY" \
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
    "$@" "$TARGET_DIR/release/inventiv-api"
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

# ------------------------------------------------------------------ benches

MOCK_ENGINE_TARGET=20000
STREAM_TOKENS=256

bench_mock_engine() {
  log "building the mock engine (release)"
  cargo build --release --quiet -p inventiv-mock-engine
  start_server mock-engine "$TARGET_DIR/release/inventiv-mock-engine" \
    --port 0 --workers 1 --ttft-ms 0 --tokens-per-second 0 --load-delay-ms 0
  local base="http://$SERVER_ADDR"

  log "mock engine: non-streaming chat, $CONNECTIONS connections, $DURATION"
  lua_post "$WORK/chat.lua" '{"model":"mock/model","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Explain in a few words why inference benchmarks matter."}],"max_tokens":32}'
  load "$base/v1/chat/completions" "$WORK/chat.lua"
  report "mock engine: $RPS non-streaming req/s on 1 core (target ≥ $MOCK_ENGINE_TARGET): $(verdict "RPS >= MOCK_ENGINE_TARGET")"

  log "mock engine: streaming chat of $STREAM_TOKENS tokens, $CONNECTIONS connections, $DURATION"
  lua_post "$WORK/stream.lua" "{\"model\":\"mock/model\",\"messages\":[{\"role\":\"user\",\"content\":\"Stream me a long answer.\"}],\"max_tokens\":$STREAM_TOKENS,\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
  load "$base/v1/chat/completions" "$WORK/stream.lua"
  # Per stream: the role chunk, one chunk per token, the usage chunk, [DONE].
  local chunks=$((RPS * (STREAM_TOKENS + 3)))
  report "mock engine: $chunks streamed chunks/s on 1 core ($RPS streams/s of $STREAM_TOKENS tokens)"
}

DEPLOY_TARGET_MS=5000
DEPLOY_RUNS=3
DEPLOY_BODY='{"provider":"mock","zone":"mock-zone-1","instance_type":"mock-1gpu-24g","model_id":"Qwen/Qwen2.5-0.5B-Instruct"}'

# jq: an RFC 3339 time (UTC, fractional seconds) as epoch seconds.
JQ_TS='def ts: capture("^(?<b>[^.Z+]+)(?<f>\\.[0-9]+)?(Z|\\+00:00)$") | ((.b + "Z") | fromdateiso8601) + ("0" + (.f // "") | tonumber);'

bench_deploy() {
  local first
  first=$(free_loopback)
  stack_up deploy INVENTIV_MOCK_BOOT_DELAY_MS=0 INVENTIV_RECONCILE_INTERVAL_MS=100 \
    INVENTIV_WORKER_HEARTBEAT_SECS=1 INVENTIV_MOCK_FIRST_ADDRESS="$first"
  log "deploy: mock VMs from $first, boot delay 0, reconcile every 100 ms, agent heartbeat every 1 s; not pinned"
  api_team activate

  local i id t0 ms ids=() times=() server=()
  for ((i = 1; i <= DEPLOY_RUNS; i++)); do
    t0=$(now_us)
    call POST /deployments "$DEPLOY_BODY"
    expect 202
    id=$(jq -r .id <<<"$BODY")
    wait_status "$id" ready 90
    ms=$(((SEEN_US - t0) / 1000))
    # Server side: the instance's creation to its move to ready.
    call GET "/instances/$id/history"
    expect 200
    local created history
    history=$BODY
    call GET "/instances/$id"
    created=$(jq -r .created_at <<<"$BODY")
    server+=("$(jq -r --arg c "$created" "$JQ_TS"' (map(select(.to_status == "ready"))[0].at | ts) - ($c | ts) | . * 1000 | floor' <<<"$history")")
    ids+=("$id")
    times+=("$ms")
    log "deploy $i: instance $id ready $ms ms after POST /deployments (server side ${server[-1]} ms)"
  done

  # The median run: the middle of the sorted times.
  local sorted median_i median_ms
  sorted=$(for i in "${!times[@]}"; do printf '%s %s\n' "${times[$i]}" "$i"; done | sort -n)
  median_i=$(sed -n "$(((DEPLOY_RUNS + 1) / 2))p" <<<"$sorted" | cut -d' ' -f2)
  median_ms=${times[$median_i]}
  local each="" i1
  for i in "${!times[@]}"; do
    i1=$((i + 1))
    each+="${each:+, }run $i1 ${times[$i]} ms (server side ${server[$i]})"
  done
  report "deploy: POST /deployments (202) → GET /instances/{id} ready, $DEPLOY_RUNS successive deployments: $each"
  report "deploy: median $median_ms ms to ready on the mock provider (target < $DEPLOY_TARGET_MS ms): $(verdict "median_ms < DEPLOY_TARGET_MS")"

  # Where the time of the median run goes.
  local mid=${ids[$median_i]} actions history created
  call GET "/instances/$mid"
  created=$(jq -r .created_at <<<"$BODY")
  call GET "/instances/$mid/history"
  history=$BODY
  call GET "/instances/$mid/actions"
  actions=$BODY
  report "deploy: breakdown of the median run (run $((median_i + 1)), instance $mid), server side, from its creation:"
  report "    status (history)            from       ms"
  while IFS= read -r line; do report "$line"; done < <(jq -r --arg c "$created" "$JQ_TS"'
    def pad($n): tostring | " " * ($n - length) + .;
    def rpad($n): tostring | . + " " * ($n - length);
    ($c | ts) as $t0
    | [.[] | {s: .to_status, at: (.at | ts)}] as $h
    | range(0; $h | length - 1) as $k
    | "    \($h[$k].s | rpad(24))\(($h[$k].at - $t0) * 1000 | floor | "+\(.) ms" | pad(10))\(($h[$k + 1].at - $h[$k].at) * 1000 | floor | pad(9))"' <<<"$history")
  # A step inside another (the bootstrap phases inside WORKER_SSH_INSTALL) is
  # indented; "gap" is the time between the end of what came before (the
  # previous step, or the start of the enclosing one) and its start: time
  # no step accounts for (polling, waiting for a heartbeat, SSH connections).
  report "    step (action log)              status      start   duration      gap"
  while IFS= read -r line; do report "$line"; done < <(jq -r --arg c "$created" "$JQ_TS"'
    def pad($n): tostring | " " * ($n - length) + .;
    def rpad($n): tostring | . + " " * ($n - length);
    ($c | ts) as $t0
    | [.[] | {a: .action_type, st: .status, s: (.started_at | ts), e: (if .finished_at then (.finished_at | ts) else null end), d: .duration_ms}] as $r
    | range(0; $r | length) as $k
    | $r[$k] as $x
    | ($x.e // $x.s) as $xe
    | [$r[0:$k][] | select(.e != null and .s <= $x.s and $xe <= .e and (.e - .s) > ($xe - $x.s))] as $outer
    | ([$t0] + [$r[0:$k][] | select(.e != null and .e <= $x.s) | .e] + [$outer[].s] | max) as $prev
    | "    \(("  " * ($outer | length) + $x.a) | rpad(31))\($x.st | rpad(8))\(($x.s - $t0) * 1000 | floor | "+\(.) ms" | pad(10))\($x.d // "-" | "\(.) ms" | pad(11))\(($x.s - $prev) * 1000 | floor | "\(.) ms" | pad(9))"' <<<"$actions")

  # Terminate them all, in parallel.
  t0=$(now_us)
  for id in "${ids[@]}"; do
    call DELETE "/instances/$id"
    expect 202
  done
  local slowest=0
  for id in "${ids[@]}"; do
    wait_status "$id" terminated 60
    ms=$(((SEEN_US - t0) / 1000))
    ((ms > slowest)) && slowest=$ms
  done
  local left
  left=$(find "$STACK_DIR/app/mock-vms" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  report "deploy: the $DEPLOY_RUNS instances terminated ${slowest} ms after their DELETE (in parallel); mock VM dirs left: $left"
  stack_down
}

HEARTBEAT_INSTANCES=500
HEARTBEAT_EVERY_S=5
# (a): one API core must take 10× the realistic load of 500 instances
# (i.e. 5000 instances on one core); (b): no instance declared dead.
HEARTBEAT_TARGET=1000
# The watchdog declares a worker dead after 15 s without heartbeat (3
# intervals; the default is 30 s), so that the 20 s of (b) can catch
# heartbeats that do not get through.
HEARTBEAT_TIMEOUT_S=15
HEARTBEAT_MODEL=Qwen/Qwen2.5-0.5B-Instruct

# The wrk script: POSTs valid v2 heartbeats (1 GPU, system samples),
# round-robin over the instances in FILE ("<instance id> <token>" lines).
heartbeat_lua() {
  local file=$1 sha
  sha=$(printf 'inventiv-bench' | sha256sum | cut -c1-64)
  cat <<EOF
local requests = {}
local n = 0
function init(args)
  local sent_at = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local k = 0
  for line in io.lines("$file") do
    local id, token = line:match("^(%S+)%s+(%S+)$")
    if id then
      k = k + 1
      local body = string.format('{"schema_version":2,"instance_id":"%s","boot_id":"bench-boot-%d",'
        .. '"agent":{"version":"0.2.0","bundle_sha256":"$sha"},"status":"ready",'
        .. '"model_id":"$HEARTBEAT_MODEL","engine":{"ready":true,"requests_running":%d,"requests_waiting":0,"restarts":0},'
        .. '"gpus":[{"index":0,"name":"NVIDIA L4","utilization_pct":%d.5,"memory_used_mib":20512.0,"memory_total_mib":23034.0,"temperature_c":61.0,"power_w":72.5}],'
        .. '"system":{"cpu_pct":12.5,"load1":0.82,"load5":0.71,"load15":0.64,"memory_used_mib":9216.0,"memory_total_mib":32100.0,'
        .. '"disk_used_gib":41.2,"disk_total_gib":100.0,"net_rx_bytes_per_s":125000.0,"net_tx_bytes_per_s":250000.0},'
        .. '"sent_at":"%s"}', id, k, k % 4, k % 100, sent_at)
      requests[k] = wrk.format("POST", "/internal/workers/heartbeat",
        { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }, body)
    end
  end
end
function request()
  n = n % #requests + 1
  return requests[n]
end
EOF
}

# paced_lua RATE CONNECTIONS: a wrk delay() that sends RATE requests/s in all
# over the thread's connections: each request takes the next slot of a
# fixed schedule (1000/RATE ms apart), so the rate holds whatever the
# latency (as long as CONNECTIONS requests can be in flight), and a late
# schedule is not caught up in a burst. Needs LuaJIT's ffi for a
# millisecond clock (Debian's wrk has it); without it, a fixed delay.
paced_lua() {
  cat <<EOF
local ok, ffi = pcall(require, "ffi")
local now_ms
if ok then
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock, bench_timespec *ts);
  ]]
  local ts = ffi.new("bench_timespec")
  now_ms = function()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
end
local slot = 0
function delay()
  if not now_ms then return math.floor(1000 * $2 / $1) end
  local now = now_ms()
  slot = math.max(slot + 1000 / $1, now)
  return math.floor(slot - now + 0.5)
end
EOF
}

bench_heartbeats() {
  local first
  first=$(free_loopback)
  API_CPU=$SERVER_CPU
  stack_up heartbeats INVENTIV_MOCK_BOOT_DELAY_MS=0 INVENTIV_RECONCILE_INTERVAL_MS=100 \
    INVENTIV_WORKER_HEARTBEAT_SECS=1 INVENTIV_MOCK_FIRST_ADDRESS="$first" \
    INVENTIV_HEARTBEAT_TIMEOUT_SECS="$HEARTBEAT_TIMEOUT_S"
  API_CPU=""
  api_team

  log "heartbeats: inserting $HEARTBEAT_INSTANCES ready instances with worker tokens"
  # 43 base64url characters each, the shape of a real worker token.
  head -c $((HEARTBEAT_INSTANCES * 33)) /dev/urandom | base64 -w 44 | tr '+/' '-_' | cut -c1-43 \
    | awk '{ printf "%d\t%s\n", NR, $0 }' >"$WORK/tokens.tsv"
  psql_db <<EOF
CREATE TEMP TABLE bench_tokens (n integer, token text);
\\copy bench_tokens FROM '$WORK/tokens.tsv'
INSERT INTO instances (id, organization_id, name, provider, zone, instance_type, model_id, status, progress,
                       worker_token_hash, worker_status, worker_engine_ready, last_heartbeat_at, started_at)
SELECT gen_random_uuid(), '$ORG_ID', 'bench-hb-' || lpad(n::text, 4, '0'), 'mock', 'mock-zone-1', 'mock-1gpu-24g',
       '$HEARTBEAT_MODEL', 'ready', 100, sha256(convert_to(token, 'UTF8')), 'ready', true, now(), now()
  FROM bench_tokens;
\\copy (SELECT i.id, t.token FROM bench_tokens t JOIN instances i ON i.worker_token_hash = sha256(convert_to(t.token, 'UTF8')) ORDER BY t.n) TO '$WORK/ids.txt' WITH (DELIMITER ' ')
EOF
  local count
  count=$(wc -l <"$WORK/ids.txt")
  ((count == HEARTBEAT_INSTANCES)) || die "$count instances inserted, not $HEARTBEAT_INSTANCES"
  heartbeat_lua "$WORK/ids.txt" >"$WORK/heartbeat.lua"
  {
    cat "$WORK/heartbeat.lua"
    paced_lua "$((HEARTBEAT_INSTANCES / HEARTBEAT_EVERY_S))" 10
  } >"$WORK/heartbeat-paced.lua"
  local url="$API/internal/workers/heartbeat"

  # Idle: no heartbeat, the orchestrator watching 500 ready instances.
  local samples0 samples1 wal0 wal1 api0 api1 orch0 orch1 pg0=0 pg1=0 t0 t1
  api0=$(cpu_ticks "$API_PID")
  orch0=$(cpu_ticks "$ORCH_PID")
  [[ -n $PG_PID ]] && pg0=$(tree_ticks "$PG_PID")
  t0=$(now_us)
  sleep 5
  t1=$(now_us)
  api1=$(cpu_ticks "$API_PID")
  orch1=$(cpu_ticks "$ORCH_PID")
  [[ -n $PG_PID ]] && pg1=$(tree_ticks "$PG_PID")
  report "heartbeats (idle, 5 s, $HEARTBEAT_INSTANCES ready instances, no heartbeat): API $(pct $((api1 - api0)) $((t1 - t0)))% of a core, orchestrator $(pct $((orch1 - orch0)) $((t1 - t0)))%$([[ -n $PG_PID ]] && echo ", PostgreSQL $(pct $((pg1 - pg0)) $((t1 - t0)))%")"

  # (a) Throughput: the API alone on core 0, wrk on core 1; PostgreSQL,
  # Redis and the orchestrator float over both cores.
  log "heartbeats (a): 8 connections, $DURATION, round-robin over $HEARTBEAT_INSTANCES instances"
  wrk_run 8 "$WARMUP" "$url" "$WORK/heartbeat.lua" /dev/null
  samples0=$(psql_db -tAc "SELECT (SELECT count(*) FROM gpu_samples) + (SELECT count(*) FROM system_samples)")
  wal0=$(psql_db -tAc "SELECT pg_current_wal_lsn()")
  api0=$(cpu_ticks "$API_PID")
  [[ -n $PG_PID ]] && pg0=$(tree_ticks "$PG_PID")
  t0=$(now_us)
  wrk_run 8 "$DURATION" "$url" "$WORK/heartbeat.lua" "$WORK/hb-a.out"
  t1=$(now_us)
  api1=$(cpu_ticks "$API_PID")
  [[ -n $PG_PID ]] && pg1=$(tree_ticks "$PG_PID")
  samples1=$(psql_db -tAc "SELECT (SELECT count(*) FROM gpu_samples) + (SELECT count(*) FROM system_samples)")
  wal1=$(psql_db -tAc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal0')::bigint")
  wrk_check "$WORK/hb-a.out"
  local n=$REQUESTS
  report "heartbeats (a): $RPS heartbeats/s handled, API on 1 core, 8 connections, PostgreSQL $PG_DURABILITY (p50 $P50, p99 $P99) (target ≥ $HEARTBEAT_TARGET/s): $(verdict "RPS >= HEARTBEAT_TARGET")"
  local pg_note="PostgreSQL configured: its CPU not measured"
  [[ -n $PG_PID ]] && pg_note="PostgreSQL $(pct $((pg1 - pg0)) $((t1 - t0)))% of a core, $(ms_per $((pg1 - pg0)) "$n") ms per heartbeat"
  report "heartbeats (a): API $(pct $((api1 - api0)) $((t1 - t0)))% of a core, $(ms_per $((api1 - api0)) "$n") CPU ms per heartbeat; $pg_note; $(((samples1 - samples0) / 2)) heartbeats stored (GPU + system rows), $((wal1 / (n > 0 ? n : 1))) WAL bytes per heartbeat"

  # (b) The realistic load: every instance once every HEARTBEAT_EVERY_S,
  # paced by wrk's delay() over 10 connections.
  local rate=$((HEARTBEAT_INSTANCES / HEARTBEAT_EVERY_S))
  log "heartbeats (b): $HEARTBEAT_INSTANCES instances every ${HEARTBEAT_EVERY_S} s = $rate/s, 20 s; orchestrator watchdog: reconcile every 100 ms, dead after $HEARTBEAT_TIMEOUT_S s without heartbeat"
  local rss_api0 rss_orch0 rss_api1 rss_orch1
  rss_api0=$(rss_mib "$API_PID")
  rss_orch0=$(rss_mib "$ORCH_PID")
  api0=$(cpu_ticks "$API_PID")
  orch0=$(cpu_ticks "$ORCH_PID")
  [[ -n $PG_PID ]] && pg0=$(tree_ticks "$PG_PID")
  t0=$(now_us)
  wrk_run 10 20s "$url" "$WORK/heartbeat-paced.lua" "$WORK/hb-b.out"
  t1=$(now_us)
  api1=$(cpu_ticks "$API_PID")
  orch1=$(cpu_ticks "$ORCH_PID")
  [[ -n $PG_PID ]] && pg1=$(tree_ticks "$PG_PID")
  rss_api1=$(rss_mib "$API_PID")
  rss_orch1=$(rss_mib "$ORCH_PID")
  wrk_check "$WORK/hb-b.out"
  n=$REQUESTS
  local dead_now dead_ever
  dead_now=$(psql_db -tAc "SELECT count(*) FROM instances WHERE status = 'worker_dead'")
  dead_ever=$(psql_db -tAc "SELECT count(DISTINCT instance_id) FROM instance_state_history WHERE to_status = 'worker_dead'")
  local achieved
  achieved=$(awk -v n="$n" -v us=$((t1 - t0)) 'BEGIN { printf "%.1f", n / (us / 1e6) }')
  report "heartbeats (b): $achieved heartbeats/s for 20 s (load of $HEARTBEAT_INSTANCES instances every ${HEARTBEAT_EVERY_S} s = $rate/s; p50 $P50, p99 $P99)"
  report "heartbeats (b): API CPU $(pct $((api1 - api0)) $((t1 - t0)))% of a core ($(ms_per $((api1 - api0)) "$n") ms per heartbeat), RSS $rss_api0 → $rss_api1 MiB"
  report "heartbeats (b): orchestrator CPU $(pct $((orch1 - orch0)) $((t1 - t0)))% of a core (watchdog over $HEARTBEAT_INSTANCES ready instances every 100 ms), RSS $rss_orch0 → $rss_orch1 MiB"
  if [[ -n $PG_PID ]]; then
    report "heartbeats (b): PostgreSQL CPU $(pct $((pg1 - pg0)) $((t1 - t0)))% of a core (all its processes)"
  fi
  report "heartbeats (b): instances declared worker_dead while heartbeats flowed: $dead_ever (now worker_dead: $dead_now) (expected 0): $(verdict "dead_ever == 0")"
  stack_down
}

# ----------------------------------------------------------------- the proxy

PROXY_DURATION=${BENCH_PROXY_DURATION:-5s}
PROXY_REPEAT=${BENCH_PROXY_REPEAT:-2} # runs of each API per case, alternated; the least CPU kept
PROXY_CONCURRENCY=(1 8 64)
PROXY_MODEL=Qwen/Qwen2.5-0.5B-Instruct
PROXY_STREAM_TOKENS=64
# Targets (ratios: this machine is noisy).
PROXY_CPU_RATIO=150    # the API's CPU per request ≤ 1.5 × the bare proxy's
PROXY_CPU_MAX_US=100   # ... and ≤ 100 µs
PROXY_EVENT_MAX_US=30  # CPU per forwarded SSE event
PROXY_RPS_RATIO=75     # at concurrency 64, ≥ 75 % of the bare proxy's requests/s
PROXY_ADDED_P50_US=500 # added p50 at concurrency 1 over direct
PROXY_RSS_MAX_MIB=64   # the API's resident memory under that load
PROXY_DURABLE_MAX_US=10 # durable metering's CPU per request over the in-memory one, at c=64

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

# proxy_run URL LUA CONNECTIONS PID: warms up, measures, and sets RPS,
# REQUESTS, P50_US, P99_US, CPU_US (PID's CPU per request, from /proc; 0
# without PID) and RSS_MAX (PID's largest resident memory in MiB, sampled
# every 100 ms during the measured run).
proxy_run() {
  local url=$1 lua=$2 c=$3 pid=$4 t0=0 t1=0 out="$WORK/proxy.out" sampler=""
  wrk_run "$c" "$WARMUP" "$url" "$lua" /dev/null
  if [[ -n $pid ]]; then
    t0=$(cpu_ticks "$pid")
    (while :; do
      rss_mib "$pid"
      echo
      sleep 0.1
    done) >"$WORK/rss.samples" &
    sampler=$!
  fi
  wrk_run "$c" "$PROXY_DURATION" "$url" "$lua" "$out"
  if [[ -n $pid ]]; then
    t1=$(cpu_ticks "$pid")
    kill "$sampler" 2>/dev/null
    wait "$sampler" 2>/dev/null || true
  fi
  RSS_MAX=$(awk 'NF && $1 + 0 > m { m = $1 + 0 } END { printf "%.1f", m }' "$WORK/rss.samples" 2>/dev/null || echo 0)
  wrk_check "$out" 2>/dev/null
  P50_US=$(us "$P50")
  P99_US=$(us "$P99")
  CPU_US=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$REQUESTS" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
}

# journal_counters LOG: "SYNCS RECORDS", the usage journal's syncs and the
# records they made durable so far, from the metrics listener of the API
# whose log is LOG.
journal_counters() {
  local addr
  addr=$(grep -F '"message":"metrics listening"' "$1" | head -1 | sed -n 's/.*"addr":"\([^"]*\)".*/\1/p')
  curl -s --noproxy '*' --max-time 5 "http://$(client_addr "$addr")/metrics" \
    | awk '$1 == "inventiv_usage_journal_syncs_total" { s = $2 } $1 == "inventiv_usage_journal_records_total" { r = $2 } END { printf "%d %d", s, r }'
}

# proxy_heartbeat INSTANCE: a fresh heartbeat for the bench's instance (its
# worker token in $WORK/worker-token).
proxy_heartbeat() {
  curl -s --noproxy '*' --max-time 5 -o /dev/null -X POST "$API/internal/workers/heartbeat" \
    -H "authorization: Bearer $(cat "$WORK/worker-token")" -H 'content-type: application/json' \
    --data-binary "{\"schema_version\":2,\"instance_id\":\"$1\",\"boot_id\":\"bench-proxy\",\"agent\":{\"version\":\"0.2.0\",\"bundle_sha256\":\"$(printf 'inventiv-bench' | sha256sum | cut -c1-64)\"},\"status\":\"ready\",\"model_id\":\"$PROXY_MODEL\",\"engine\":{\"ready\":true,\"requests_running\":0,\"requests_waiting\":0,\"restarts\":0},\"gpus\":[],\"sent_at\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}"
}

# The data plane: the mock engine directly, then through a bare hyper
# pass-through proxy (inventiv-api/examples/bare_proxy.rs: the floor any
# proxy pays), then through the API's /v1 with an API key, routing and
# durable metering (the usage journal), and through a second API replica
# whose metering is the in-memory one (INVENTIV_USAGE_JOURNAL=off, a
# benchmark-only switch): what durability costs; concurrency 1, 8 and 64,
# streaming and not. The APIs reach the engine as they reach any worker:
# TLS to the node's relay (inventiv-api/examples/bench_relay.rs: the tests'
# stand-in relay, its key issued and its certificate pinned); the bare
# proxy and "direct" talk to the engine's plain port. The proxy under test
# (bare or an API) runs alone on core 0 (the idle API replica beside it);
# the engine, the relay and wrk share core 1; PostgreSQL, Redis and the
# orchestrator float. The engine answers at once (no simulated GPU time)
# so that the proxies' own cost shows.
bench_proxy() {
  log "building the bare proxy and the bench relay (release)"
  cargo build --release --quiet -p inventiv-api --example bare_proxy --example bench_relay
  API_CPU=$SERVER_CPU
  stack_up proxy
  API_CPU=""
  api_team activate

  # The engine, pinned with wrk, registered as a ready instance of the
  # organization with a worker token; heartbeats keep it fresh. Its relay
  # points the instance at itself once the key and the pin are stored.
  start_logged proxy/engine listening "$LOAD_CPU" 10 "$TARGET_DIR/release/inventiv-mock-engine" \
    --port 0 --workers 1 --ttft-ms 0 --tokens-per-second 0 --load-delay-ms 0 --model "$PROXY_MODEL"
  local engine_pid=$STARTED_PID engine_addr
  engine_addr=$(client_addr "$SERVER_ADDR")
  local direct="http://$engine_addr" token instance
  token=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  printf '%s' "$token" >"$WORK/worker-token"
  instance=$(psql_db -tA -c "INSERT INTO instances (id, organization_id, name, provider, zone, instance_type,
      model_id, status, progress, worker_token_hash, worker_status, worker_engine_ready, last_heartbeat_at,
      started_at)
    VALUES (gen_random_uuid(), '$ORG_ID', 'bench-proxy', 'mock', 'mock-zone-1', 'mock-1gpu-24g', '$PROXY_MODEL',
      'ready', 100, sha256(convert_to('$token', 'UTF8')), 'ready', true, now(), now())
    RETURNING id" | head -n 1)
  start_logged proxy/relay listening "$LOAD_CPU" 30 \
    env DATABASE_URL="$DB_URL" INVENTIV_ENCRYPTION_KEY="$STACK_ENCRYPTION_KEY" \
    "$TARGET_DIR/release/examples/bench_relay" "${engine_addr##*:}" "$instance"
  local relay_pid=$STARTED_PID
  (while :; do
    proxy_heartbeat "$instance"
    sleep 2
  done) &
  PIDS+=("$!")

  call POST /api-keys '{"name":"bench"}'
  expect 201 200
  local key
  key=$(jq -r .key <<<"$BODY")
  [[ $key == inv_* ]] || die "POST /api-keys gave no key: $BODY"

  start_server proxy/bare "$TARGET_DIR/release/examples/bare_proxy" "$direct"
  local bare_pid=$STARTED_PID bare
  bare="http://$(client_addr "$SERVER_ADDR")"
  start_api proxy/api-memory "$WORK/proxy/app-memory" "$SERVER_CPU" \
    INVENTIV_INSECURE_DEVELOPMENT=1 INVENTIV_USAGE_JOURNAL=off
  local memory_pid=$STARTED_PID memory
  memory="http://$(client_addr "$SERVER_ADDR")"

  local chat stream
  chat="{\"model\":\"$PROXY_MODEL\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"Explain in a few words why inference benchmarks matter.\"}],\"max_tokens\":16}"
  stream="{\"model\":\"$PROXY_MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Stream me an answer.\"}],\"max_tokens\":$PROXY_STREAM_TOKENS,\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
  # Each API answers once its routing table has the instance behind its relay.
  local deadline=$((SECONDS + 15)) base
  for base in "$API" "$memory"; do
    until [[ $(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -H "authorization: Bearer $key" \
      -H 'content-type: application/json' --data-binary "$chat" "$base/v1/chat/completions") == 200 ]]; do
      ((SECONDS < deadline)) || die "$base does not answer a chat completion through the relay within 15 s"
      sleep 0.1
    done
  done

  lua_post "$WORK/proxy-chat.lua" "$chat"
  lua_post "$WORK/proxy-stream.lua" "$stream"
  printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$key" | tee -a "$WORK/proxy-chat.lua" >>"$WORK/proxy-stream.lua"
  # SSE events per stream, as the client sees them through the API.
  local events
  events=$(curl -s --noproxy '*' -N -H "authorization: Bearer $key" -H 'content-type: application/json' \
    --data-binary "$stream" "$API/v1/chat/completions" | grep -c '^data: ')
  ((events > PROXY_STREAM_TOKENS)) || die "a stream through the API had $events events"
  local usage0
  usage0=$(psql_db -tAc "SELECT count(*) FROM usage_records")
  local api_idle api_rss="?"
  api_idle=$(rss_mib "$API_PID")

  local mode lua c k round via base pid syncs0 syncs1
  local -A rps p50 p99 cpu per_sync
  for mode in chat stream; do
    lua="$WORK/proxy-$mode.lua"
    for c in "${PROXY_CONCURRENCY[@]}"; do
      log "proxy: $mode, concurrency $c, $PROXY_DURATION each: direct, bare proxy, API (durable metering), API (in-memory metering)"
      k="$mode-$c"
      proxy_run "$direct/v1/chat/completions" "$lua" "$c" ""
      rps[direct-$k]=$RPS p50[direct-$k]=$P50_US p99[direct-$k]=$P99_US
      proxy_run "$bare/v1/chat/completions" "$lua" "$c" "$bare_pid"
      rps[bare-$k]=$RPS p50[bare-$k]=$P50_US p99[bare-$k]=$P99_US cpu[bare-$k]=$CPU_US
      # The two APIs in turn, PROXY_REPEAT times each; each keeps its
      # run with the least CPU per request (noise only ever adds some).
      for ((round = 0; round < PROXY_REPEAT; round++)); do
        for via in api memory; do
          if [[ $via == api ]]; then base=$API pid=$API_PID; else base=$memory pid=$memory_pid; fi
          [[ $via == memory ]] || syncs0=$(journal_counters "$WORK/proxy/api.log")
          proxy_run "$base/v1/chat/completions" "$lua" "$c" "$pid"
          [[ $via == memory ]] || syncs1=$(journal_counters "$WORK/proxy/api.log")
          if ((round == 0)) || awk -v a="$CPU_US" -v b="${cpu[$via-$k]}" 'BEGIN { exit !(a < b) }'; then
            rps[$via-$k]=$RPS p50[$via-$k]=$P50_US p99[$via-$k]=$P99_US cpu[$via-$k]=$CPU_US
            # Records per journal sync in that run (its warm-up included).
            [[ $via == memory ]] || per_sync[$k]=$(awk -v a="$syncs0" -v b="$syncs1" 'BEGIN {
              split(a, x, " "); split(b, y, " "); s = y[1] - x[1]
              printf "%.1f", (s > 0 ? (y[2] - x[2]) / s : 0) }')
          fi
          if [[ $via-$k == api-chat-64 ]] && awk -v a="$RSS_MAX" -v b="$api_rss" 'BEGIN { exit !(b == "?" || a > b) }'; then
            api_rss=$RSS_MAX
          fi
        done
      done
    done
  done
  # Both meters write within a few seconds of the last answer.
  sleep 2
  local usage1
  usage1=$(psql_db -tAc "SELECT count(*) FROM usage_records")

  local line
  report "proxy: the proxy under test alone on core 0, the engine, its relay and wrk on core 1; $PROXY_DURATION per run (each API $PROXY_REPEAT runs, alternated, its least CPU per request kept); chat: not streamed, 16 tokens; stream: $PROXY_STREAM_TOKENS tokens = $events SSE events per stream; api = durable metering (journal), memory = in-memory metering (INVENTIV_USAGE_JOURNAL=off); both APIs reach the engine over TLS through its relay, direct and bare through its plain port"
  for mode in chat stream; do
    for c in "${PROXY_CONCURRENCY[@]}"; do
      k="$mode-$c"
      line="proxy: $mode c=$c: direct ${rps[direct-$k]} req/s p50 ${p50[direct-$k]} µs p99 ${p99[direct-$k]} µs"
      for via in bare api memory; do
        line+=" | $via ${rps[$via-$k]} req/s p50 ${p50[$via-$k]} µs (+$((p50[$via-$k] - p50[direct-$k])) µs) p99 ${p99[$via-$k]} µs, CPU ${cpu[$via-$k]} µs/req"
        [[ $mode == chat ]] || line+=" = $(per_event "${cpu[$via-$k]}" "$events") µs/event"
      done
      report "$line"
    done
  done
  report "proxy: durable metering vs in-memory (API CPU per request, added p50 over direct):"
  for mode in chat stream; do
    for c in "${PROXY_CONCURRENCY[@]}"; do
      k="$mode-$c"
      report "proxy:   $mode c=$c: durable ${cpu[api-$k]} µs +$((p50[api-$k] - p50[direct-$k])) µs | in-memory ${cpu[memory-$k]} µs +$((p50[memory-$k] - p50[direct-$k])) µs | bare ${cpu[bare-$k]} µs +$((p50[bare-$k] - p50[direct-$k])) µs | durability costs $(awk -v a="${cpu[api-$k]}" -v b="${cpu[memory-$k]}" 'BEGIN { printf "%+.1f", a - b }') µs CPU, $((p50[api-$k] - p50[memory-$k])) µs p50 (${per_sync[$k]} records per journal sync)"
    done
  done
  local api_cpu=${cpu[api-chat-64]} bare_cpu=${cpu[bare-chat-64]} ratio api_event tput added cost
  for mode in chat stream; do
    cost=$(awk -v a="${cpu[api-$mode-64]}" -v b="${cpu[memory-$mode-64]}" 'BEGIN { printf "%.1f", a - b }')
    report "proxy target: the cost of durability at c=64 ($mode): API CPU per request ${cpu[api-$mode-64]} µs durable vs ${cpu[memory-$mode-64]} µs in-memory = $cost µs (target ≤ +$PROXY_DURABLE_MAX_US µs): $(at_most "$cost" "$PROXY_DURABLE_MAX_US")"
  done
  ratio=$(awk -v a="$api_cpu" -v b="$bare_cpu" 'BEGIN { printf "%d", (b > 0 ? a / b * 100 : 0) }')
  report "proxy target: API CPU per non-streaming request (c=64) $api_cpu µs = ${ratio}% of the bare proxy's $bare_cpu µs (target ≤ ${PROXY_CPU_RATIO}% and ≤ $PROXY_CPU_MAX_US µs): $(if ((ratio <= PROXY_CPU_RATIO)); then at_most "$api_cpu" "$PROXY_CPU_MAX_US"; else printf 'NOT MET'; fi)"
  api_event=$(per_event "${cpu[api-stream-64]}" "$events")
  report "proxy target: API CPU per forwarded SSE event (c=64) $api_event µs (bare proxy $(per_event "${cpu[bare-stream-64]}" "$events") µs) (target ≤ $PROXY_EVENT_MAX_US µs): $(at_most "$api_event" "$PROXY_EVENT_MAX_US")"
  tput=$((rps[api-chat-64] * 100 / (rps[bare-chat-64] > 0 ? rps[bare-chat-64] : 1)))
  report "proxy target: API throughput at c=64 ${rps[api-chat-64]} req/s = ${tput}% of the bare proxy's ${rps[bare-chat-64]} (target ≥ ${PROXY_RPS_RATIO}%): $(verdict "tput >= PROXY_RPS_RATIO")"
  added=$((p50[api-chat-1] - p50[direct-chat-1]))
  report "proxy target: API added p50 at c=1 $added µs over direct (bare proxy +$((p50[bare-chat-1] - p50[direct-chat-1])) µs) (target ≤ $PROXY_ADDED_P50_US µs): $(verdict "added <= PROXY_ADDED_P50_US")"
  report "proxy target: API resident memory during the c=64 chat load at most $api_rss MiB (before the runs $api_idle MiB) (target ≤ $PROXY_RSS_MAX_MIB MiB): $(at_most "$api_rss" "$PROXY_RSS_MAX_MIB")"
  report "proxy: metering wrote $((usage1 - usage0)) usage rows during the API runs (one per answered request, warm-ups included)"
  stop_pid "$memory_pid"
  stop_pid "$bare_pid"
  stop_pid "$relay_pid"
  stop_pid "$engine_pid"
  stack_down
}

# --------------------------------------------------------------------- main

command -v wrk >/dev/null || apt_install wrk
command -v taskset >/dev/null || apt_install util-linux
PIN=0
if (($(nproc) >= 2)); then PIN=1; else warn "fewer than 2 cores: server and load generator are not pinned"; fi

selected=("$@")
((${#selected[@]})) || selected=("${BENCHES[@]}")
for name in "${selected[@]}"; do
  declare -F "bench_$name" >/dev/null || die "no bench '$name' (known: ${BENCHES[*]})"
done
for name in "${selected[@]}"; do
  case $name in
    proxy | deploy | heartbeats)
      command -v jq >/dev/null || apt_install jq
      command -v curl >/dev/null || apt_install curl
      ;;
  esac
done
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
BUSIES=""
for name in "${selected[@]}"; do
  busy "$name"
  "bench_$name"
done
SUMMARY=("machine: $(nproc) cores; cores kept busy by other processes just before each bench: $BUSIES" "${SUMMARY[@]}")

printf '\n==> bench summary\n'
printf '%s\n' "${SUMMARY[@]}"
