#!/usr/bin/env bash
# `make bench`: throughput benchmarks on this machine, each printing one
# clear figure. The server under test is pinned to core 0, the load
# generator (wrk, from Debian's package) to core 1, so a figure means "on
# one core".
#
#   scripts/bench.sh                 every bench (see BENCHES below)
#   scripts/bench.sh mock_engine     only the benches named
#   BENCH_DURATION=5s BENCH_CONNECTIONS=128 scripts/bench.sh
#
# Add a bench: write a `bench_<name>` function that starts what it needs with
# `start_server` (stopped at exit) and measures with `load`, then list
# <name> in BENCHES.
set -euo pipefail

LOG_TAG="bench"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

BENCHES=(mock_engine)

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WARMUP=${BENCH_WARMUP:-2s}
SERVER_CPU=0
LOAD_CPU=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/inventiv-bench.XXXXXX")
PIDS=()
SUMMARY=()

cleanup() {
  local rc=$?
  trap '' INT TERM
  trap - EXIT
  set +e
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
# (empty on a one-core machine). taskset execs the command, so a background
# job's $! is the command's own pid.
pin() {
  PIN_CMD=()
  if ((PIN)); then PIN_CMD=(taskset -c "$1"); fi
}

# start_server NAME COMMAND...: starts a server that logs JSON to stdout,
# waits (10 s at most) for its `listening` line and sets SERVER_ADDR.
start_server() {
  local name=$1
  shift
  local log="$WORK/$name.log"
  pin "$SERVER_CPU"
  LOG_FORMAT=json RUST_LOG=info "${PIN_CMD[@]+"${PIN_CMD[@]}"}" "$@" >"$log" 2>&1 &
  local pid=$! deadline=$((SECONDS + 10))
  PIDS+=("$pid")
  SERVER_ADDR=""
  while [[ -z $SERVER_ADDR ]]; do
    kill -0 "$pid" 2>/dev/null || die "$name exited: $(tail -5 "$log")"
    ((SECONDS < deadline)) || die "$name did not log 'listening' within 10 s"
    SERVER_ADDR=$(sed -n 's/.*"message":"listening".*"addr":"\([^"]*\)".*/\1/p; s/.*"addr":"\([^"]*\)".*"message":"listening".*/\1/p' "$log" | head -1)
    [[ -n $SERVER_ADDR ]] || sleep 0.05
  done
}

# lua_post FILE JSON: a wrk script that POSTs JSON.
lua_post() {
  cat >"$1" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$2]]
EOF
}

# load URL LUA: warms up, then runs wrk; sets RPS and prints wrk's report.
# Fails if any answer was not 2xx or a socket error occurred.
load() {
  local url=$1 lua=$2 out="$WORK/wrk.out"
  pin "$LOAD_CPU"
  "${PIN_CMD[@]+"${PIN_CMD[@]}"}" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" -s "$lua" "$url" >/dev/null
  "${PIN_CMD[@]+"${PIN_CMD[@]}"}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$lua" "$url" >"$out"
  sed 's/^/    /' "$out" >&2
  if grep -qE 'Non-2xx|Socket errors' "$out"; then
    die "errors during the run (see above)"
  fi
  RPS=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$out")
  [[ -n $RPS ]] || die "no Requests/sec in wrk's output"
}

report() {
  SUMMARY+=("$1")
  printf '%s\n' "$1"
}

# ------------------------------------------------------------------ benches

MOCK_ENGINE_TARGET=20000
STREAM_TOKENS=256

bench_mock_engine() {
  log "building the mock engine (release)"
  cargo build --release --quiet -p inventiv-mock-engine
  start_server mock-engine target/release/inventiv-mock-engine \
    --port 0 --workers 1 --ttft-ms 0 --tokens-per-second 0 --load-delay-ms 0
  local base="http://$SERVER_ADDR"

  log "mock engine: non-streaming chat, $CONNECTIONS connections, $DURATION"
  lua_post "$WORK/chat.lua" '{"model":"mock/model","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Explain in a few words why inference benchmarks matter."}],"max_tokens":32}'
  load "$base/v1/chat/completions" "$WORK/chat.lua"
  local verdict="NOT MET"
  ((RPS >= MOCK_ENGINE_TARGET)) && verdict="MET"
  report "mock engine: $RPS non-streaming req/s on 1 core (target ≥ $MOCK_ENGINE_TARGET): $verdict"

  log "mock engine: streaming chat of $STREAM_TOKENS tokens, $CONNECTIONS connections, $DURATION"
  lua_post "$WORK/stream.lua" "{\"model\":\"mock/model\",\"messages\":[{\"role\":\"user\",\"content\":\"Stream me a long answer.\"}],\"max_tokens\":$STREAM_TOKENS,\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
  load "$base/v1/chat/completions" "$WORK/stream.lua"
  # Per stream: the role chunk, one chunk per token, the usage chunk, [DONE].
  local chunks=$((RPS * (STREAM_TOKENS + 3)))
  report "mock engine: $chunks streamed chunks/s on 1 core ($RPS streams/s of $STREAM_TOKENS tokens)"
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
  "bench_$name"
done

printf '\n==> bench summary\n'
printf '%s\n' "${SUMMARY[@]}"
