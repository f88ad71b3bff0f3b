# shellcheck shell=bash
# `scripts/bench.sh proxy`: the data plane (see bench_proxy below);
# BENCH_PROXY_DURATION and BENCH_PROXY_REPEAT set its runs,
# BENCH_PROXY_CONCURRENCY and BENCH_PROXY_MODES narrow it to some cases
# (e.g. "64" and "chat"), BENCH_PROXY_PERF=DIR records a CPU profile of
# each API run there (perf record -g; read with perf report -i FILE), and
# BENCH_PROXY_AB=BINARY runs another build of inventiv-api (e.g. the
# commit before a change, built and copied aside) as a third replica with
# durable metering, alternated with the others, and prints this build's
# CPU per request against it: a change of a few per cent shows there,
# where two bench runs differ by 10-20 % on a shared VM.
# Sourced by scripts/bench.sh (helpers: bench/lib.sh).

PROXY_DURATION=${BENCH_PROXY_DURATION:-5s}
PROXY_REPEAT=${BENCH_PROXY_REPEAT:-2} # runs of each API per case, alternated; the least CPU kept
read -ra PROXY_CONCURRENCY <<<"${BENCH_PROXY_CONCURRENCY:-1 8 64}"
read -ra PROXY_MODES <<<"${BENCH_PROXY_MODES:-chat stream}"
PROXY_PERF=${BENCH_PROXY_PERF:-}
PROXY_AB=${BENCH_PROXY_AB:-}
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

# proxy_run URL LUA CONNECTIONS PID [PROFILE]: warms up, measures, and sets RPS,
# REQUESTS, P50_US, P99_US, CPU_US (PID's CPU per request, from /proc; 0
# without PID), PG_US (the private PostgreSQL's CPU per request: the usage
# rows the APIs write; 0 without a private server) and RSS_MAX (PID's
# largest resident memory in MiB, sampled every 100 ms during the measured
# run); with PROFILE, PID's CPU profile of the measured run is recorded there.
proxy_run() {
  local url=$1 lua=$2 c=$3 pid=$4 profile=${5:-} t0=0 t1=0 out="$WORK/proxy.out" sampler="" writer="" w0=0 w1=0 perf="" pg0=0 pg1=0
  wrk_run "$c" "$WARMUP" "$url" "$lua" /dev/null
  if [[ -n $pid ]]; then
    writer=$(journal_writer "$pid")
    [[ -z $writer ]] || w0=$(cpu_ticks "$pid/task/$writer")
    pg0=$(pg_ticks)
    t0=$(cpu_ticks "$pid")
    (while :; do
      rss_mib "$pid"
      echo
      sleep 0.1
    done) >"$WORK/rss.samples" &
    sampler=$!
    if [[ -n $profile ]]; then
      perf record -q -F 999 -g -p "$pid" -o "$profile" 2>/dev/null &
      perf=$!
    fi
  fi
  wrk_run "$c" "$PROXY_DURATION" "$url" "$lua" "$out"
  if [[ -n $pid ]]; then
    if [[ -n $perf ]]; then
      kill -INT "$perf" 2>/dev/null
      wait "$perf" 2>/dev/null || true
    fi
    t1=$(cpu_ticks "$pid")
    pg1=$(pg_ticks)
    [[ -z $writer ]] || w1=$(cpu_ticks "$pid/task/$writer")
    kill "$sampler" 2>/dev/null
    wait "$sampler" 2>/dev/null || true
  fi
  RSS_MAX=$(awk 'NF && $1 + 0 > m { m = $1 + 0 } END { printf "%.1f", m }' "$WORK/rss.samples" 2>/dev/null || echo 0)
  wrk_check "$out" 2>/dev/null
  P50_US=$(us "$P50")
  P99_US=$(us "$P99")
  CPU_US=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$REQUESTS" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
  WRITER_US=$(awk -v t=$((w1 - w0)) -v hz="$CLK_TCK" -v n="$REQUESTS" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
  PG_US=$(awk -v t=$((pg1 - pg0)) -v hz="$CLK_TCK" -v n="$REQUESTS" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
}

# pg_ticks: the CPU ticks so far of the stack's private PostgreSQL (its
# postmaster and every process it started), 0 without one. A process that
# ended meanwhile (an autovacuum worker) is not counted.
pg_ticks() {
  local total=0 p
  [[ -n $PG_PID ]] || {
    echo 0
    return 0
  }
  for p in "$PG_PID" $(pgrep -P "$PG_PID"); do
    total=$((total + $(cpu_ticks "$p")))
  done
  echo "$total"
}

# journal_writer PID: the thread id of PID's usage journal writer (the
# thread named usage-journal), empty without a journal. Its CPU is the
# direct part of what durability costs, measured alone.
journal_writer() {
  local task
  for task in /proc/"$1"/task/*; do
    if [[ $(cat "$task/comm" 2>/dev/null) == usage-journal ]]; then
      printf '%s' "${task##*/}"
      return 0
    fi
  done
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

# paired A_RUNS B_RUNS: "median ±x.x µs (±a, ±b, ...)", the differences
# A − B of runs made one after the other (round by round), and their median:
# beside the least-against-least difference, a figure a single lucky or
# unlucky run does not move (each run of one case can differ by 10-20 % on
# this VM, more than what durability costs a stream).
paired() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) { d[i] = x[i] - y[i]; list = list (i > 1 ? ", " : "") sprintf("%+.1f", d[i]) }
    for (i = 2; i <= n; i++) for (j = i; j > 1 && d[j - 1] > d[j]; j--) { t = d[j]; d[j] = d[j - 1]; d[j - 1] = t }
    m = (n % 2 ? d[(n + 1) / 2] : (d[n / 2] + d[n / 2 + 1]) / 2)
    printf "median %+.1f µs (%s)", m, list }'
}

# durability KEY: what durable metering adds to the API's CPU per request
# in case KEY, least against least and run by run (from bench_proxy's
# figures, its locals).
durability() {
  printf '%s µs CPU (run by run: %s)' \
    "$(awk -v a="${cpu[api-$1]}" -v b="${cpu[memory-$1]}" 'BEGIN { printf "%+.1f", a - b }')" \
    "$(paired "${runs[api-$1]}" "${runs[memory-$1]}")"
}

# api_runs KEY LUA CONNECTIONS [VIA...]: the proxies VIA (default: the two
# APIs; "bare" too) in turn, PROXY_REPEAT times each; each keeps its run
# with the least CPU per request (noise only ever adds some) in
# bench_proxy's figures under KEY.
api_runs() {
  local k=$1 lua=$2 c=$3 round via base pid syncs0 syncs1
  local -a vias=("${@:4}")
  ((${#vias[@]})) || vias=(api memory)
  [[ -z $PROXY_AB ]] || vias+=(ab)
  for ((round = 0; round < PROXY_REPEAT; round++)); do
    for via in "${vias[@]}"; do
      case $via in
        api) base=$API pid=$API_PID ;;
        memory) base=$memory pid=$memory_pid ;;
        ab) base=$ab pid=$ab_pid ;;
        bare) base=$bare pid=$bare_pid ;;
        bare-tls) base=$bare_tls pid=$bare_tls_pid ;;
      esac
      [[ $via != api ]] || syncs0=$(journal_counters "$WORK/proxy/api.log")
      proxy_run "$base/v1/chat/completions" "$lua" "$c" "$pid" "${PROXY_PERF:+$PROXY_PERF/$via-$k-$round.data}"
      log "proxy: $k $via run $((round + 1)): $CPU_US µs CPU per request, $RPS req/s"
      runs[$via-$k]+="$CPU_US "
      [[ $via != api ]] || syncs1=$(journal_counters "$WORK/proxy/api.log")
      if ((round == 0)) || awk -v a="$CPU_US" -v b="${cpu[$via-$k]}" 'BEGIN { exit !(a < b) }'; then
        rps[$via-$k]=$RPS p50[$via-$k]=$P50_US p99[$via-$k]=$P99_US cpu[$via-$k]=$CPU_US pg[$via-$k]=$PG_US
        # Records per journal sync in that run (its warm-up included).
        [[ $via != api ]] || writer_cpu[$k]=$WRITER_US
        [[ $via != api ]] || per_sync[$k]=$(awk -v a="$syncs0" -v b="$syncs1" 'BEGIN {
          split(a, x, " "); split(b, y, " "); s = y[1] - x[1]
          printf "%.1f", (s > 0 ? (y[2] - x[2]) / s : 0) }')
      fi
      if [[ $via-$k == api-chat-64 ]] && awk -v a="$RSS_MAX" -v b="$api_rss" 'BEGIN { exit !(b == "?" || a > b) }'; then
        api_rss=$RSS_MAX
      fi
      if [[ $via-$k == memory-chat-64 ]] && awk -v a="$RSS_MAX" -v b="$memory_rss" 'BEGIN { exit !(b == "?" || a > b) }'; then
        memory_rss=$RSS_MAX
      fi
    done
  done
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
# proxy and "direct" talk to the engine's plain port, and "bare-tls" (the
# same bare proxy with the relay's key and pinned certificate) to the
# relay: the floor of a proxy that speaks TLS to the worker, printed for
# reading beside the targets. The proxy under test
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
  local relay_pid=$STARTED_PID relay_addr
  relay_addr=$(client_addr "$SERVER_ADDR")
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
  # The same floor over TLS to the relay, as the APIs reach the engine.
  start_server proxy/bare-tls env DATABASE_URL="$DB_URL" INVENTIV_ENCRYPTION_KEY="$STACK_ENCRYPTION_KEY" \
    "$TARGET_DIR/release/examples/bare_proxy" --relay "$instance" "https://$relay_addr"
  local bare_tls_pid=$STARTED_PID bare_tls
  bare_tls="http://$(client_addr "$SERVER_ADDR")"
  start_api proxy/api-memory "$WORK/proxy/app-memory" "$SERVER_CPU" \
    INVENTIV_INSECURE_DEVELOPMENT=1 INVENTIV_USAGE_JOURNAL=off
  local memory_pid=$STARTED_PID memory
  memory="http://$(client_addr "$SERVER_ADDR")"
  local ab_pid="" ab="" apis=("$API" "$memory") shown=(bare bare-tls api memory)
  if [[ -n $PROXY_AB ]]; then
    [[ -x $PROXY_AB ]] || die "BENCH_PROXY_AB=$PROXY_AB is not an executable"
    API_BIN=$PROXY_AB start_api proxy/api-ab "$WORK/proxy/app-ab" "$SERVER_CPU" INVENTIV_INSECURE_DEVELOPMENT=1
    ab_pid=$STARTED_PID
    ab="http://$(client_addr "$SERVER_ADDR")"
    apis+=("$ab")
    shown+=(ab)
  fi

  local chat stream
  chat="{\"model\":\"$PROXY_MODEL\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"Explain in a few words why inference benchmarks matter.\"}],\"max_tokens\":16}"
  stream="{\"model\":\"$PROXY_MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Stream me an answer.\"}],\"max_tokens\":$PROXY_STREAM_TOKENS,\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
  # Each API answers once its routing table has the instance behind its relay.
  local deadline=$((SECONDS + 15)) base
  for base in "${apis[@]}"; do
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
  local api_idle api_rss="?" memory_rss="?"
  api_idle=$(rss_mib "$API_PID")

  local mode lua c k rate
  local -A rps p50 p99 cpu pg per_sync writer_cpu paced_rate runs
  [[ -z $PROXY_PERF ]] || command -v perf >/dev/null || die "BENCH_PROXY_PERF needs perf (Debian: linux-perf)"
  [[ -z $PROXY_PERF ]] || mkdir -p "$PROXY_PERF"
  for mode in "${PROXY_MODES[@]}"; do
    lua="$WORK/proxy-$mode.lua"
    for c in "${PROXY_CONCURRENCY[@]}"; do
      log "proxy: $mode, concurrency $c, $PROXY_DURATION each: direct, bare proxy, API (durable metering), API (in-memory metering)"
      k="$mode-$c"
      proxy_run "$direct/v1/chat/completions" "$lua" "$c" ""
      rps[direct-$k]=$RPS p50[direct-$k]=$P50_US p99[direct-$k]=$P99_US
      # The floor gets the same number of tries as the APIs, alternated with them.
      api_runs "$k" "$lua" "$c" bare bare-tls api memory
    done
    # Both APIs paced at one offered load (70 % of the slower one's
    # closed-loop throughput) over 64 connections: what durability costs
    # below saturation, where fewer answers share each journal sync (the
    # target is the closed-loop c=64 figure; this one is for reading).
    if [[ -n ${rps[api-$mode-64]:-} ]]; then
      rate=$(((rps[api-$mode-64] < rps[memory-$mode-64] ? rps[api-$mode-64] : rps[memory-$mode-64]) * 70 / 100))
      paced_rate[$mode]=$rate
      { cat "$lua"; paced_lua "$rate" 64; } >"$WORK/proxy-$mode-paced.lua"
      log "proxy: $mode, both APIs paced at $rate req/s over 64 connections, $PROXY_DURATION each"
      api_runs "$mode-paced" "$WORK/proxy-$mode-paced.lua" 64
    fi
  done
  # Both meters write within a few seconds of the last answer.
  sleep 2
  local usage1
  usage1=$(psql_db -tAc "SELECT count(*) FROM usage_records")

  local line
  report "proxy: the proxy under test alone on core 0, the engine, its relay and wrk on core 1; $PROXY_DURATION per run (the bare proxy and each API $PROXY_REPEAT runs, alternated, each its least CPU per request kept); chat: not streamed, 16 tokens; stream: $PROXY_STREAM_TOKENS tokens = $events SSE events per stream; api = durable metering (journal), memory = in-memory metering (INVENTIV_USAGE_JOURNAL=off); both APIs and bare-tls (the bare proxy with the relay key, the certificate pinned) reach the engine over TLS through its relay, direct and bare through its plain port"
  for mode in "${PROXY_MODES[@]}"; do
    for c in "${PROXY_CONCURRENCY[@]}"; do
      k="$mode-$c"
      line="proxy: $mode c=$c: direct ${rps[direct-$k]} req/s p50 ${p50[direct-$k]} µs p99 ${p99[direct-$k]} µs"
      for via in "${shown[@]}"; do
        line+=" | $via ${rps[$via-$k]} req/s p50 ${p50[$via-$k]} µs (+$((p50[$via-$k] - p50[direct-$k])) µs) p99 ${p99[$via-$k]} µs, CPU ${cpu[$via-$k]} µs/req"
        [[ $mode == chat ]] || line+=" = $(per_event "${cpu[$via-$k]}" "$events") µs/event"
      done
      report "$line"
    done
  done
  report "proxy: durable metering vs in-memory (API CPU per request, added p50 over direct):"
  for mode in "${PROXY_MODES[@]}"; do
    for c in "${PROXY_CONCURRENCY[@]}"; do
      k="$mode-$c"
      report "proxy:   $mode c=$c: durable ${cpu[api-$k]} µs +$((p50[api-$k] - p50[direct-$k])) µs | in-memory ${cpu[memory-$k]} µs +$((p50[memory-$k] - p50[direct-$k])) µs | bare ${cpu[bare-$k]} µs +$((p50[bare-$k] - p50[direct-$k])) µs | durability costs $(durability "$k"), $((p50[api-$k] - p50[memory-$k])) µs p50 (${per_sync[$k]} records per journal sync; the writer thread alone ${writer_cpu[$k]} µs/req) | PostgreSQL ${pg[api-$k]} µs/req durable, ${pg[memory-$k]} µs/req in-memory (the usage rows; not in the API's figure, on the same two cores)"
    done
    k="$mode-paced"
    [[ -n ${cpu[api-$k]:-} ]] || continue
    report "proxy:   $mode paced at ${paced_rate[$mode]} req/s over 64 connections: durable ${cpu[api-$k]} µs p50 ${p50[api-$k]} µs (${rps[api-$k]} req/s) | in-memory ${cpu[memory-$k]} µs p50 ${p50[memory-$k]} µs (${rps[memory-$k]} req/s) | durability costs $(durability "$k") (${per_sync[$k]} records per journal sync; the writer thread alone ${writer_cpu[$k]} µs/req)"
  done
  if [[ -n $PROXY_AB ]]; then
    local case
    for case in $(printf '%s\n' "${!cpu[@]}" | sed -n 's/^ab-//p' | sort); do
      report "proxy: A/B $case: this build ${cpu[api-$case]} µs/req, ${rps[api-$case]} req/s | $PROXY_AB ${cpu[ab-$case]} µs/req, ${rps[ab-$case]} req/s | this build's CPU per request $(awk -v a="${cpu[api-$case]}" -v b="${cpu[ab-$case]}" 'BEGIN { printf "%+.1f", (b > 0 ? (a - b) * 100 / b : 0) }') % (run by run: $(paired "${runs[api-$case]}" "${runs[ab-$case]}"))"
    done
  fi
  # The targets need every case; a narrowed run prints its figures only.
  if [[ ${PROXY_MODES[*]} == "chat stream" && ${PROXY_CONCURRENCY[*]} == "1 8 64" ]]; then
    proxy_targets
  elif [[ -n ${rps[api-chat-64]:-} ]]; then
    report "proxy: API resident memory during the c=64 chat load at most $api_rss MiB (before the runs $api_idle MiB; the in-memory metering replica's at most $memory_rss MiB)"
  fi
  report "proxy: metering wrote $((usage1 - usage0)) usage rows during the API runs (one per answered request, warm-ups included)"
  stop_pid "$memory_pid"
  [[ -z $ab_pid ]] || stop_pid "$ab_pid"
  stop_pid "$bare_pid"
  stop_pid "$bare_tls_pid"
  stop_pid "$relay_pid"
  stop_pid "$engine_pid"
  stack_down
}

# proxy_targets: the verdicts, from bench_proxy's figures (its locals).
proxy_targets() {
  local api_cpu=${cpu[api-chat-64]} bare_cpu=${cpu[bare-chat-64]} ratio api_event tput added cost mode
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
  # For reading, not a target: the floor of a proxy that speaks TLS to the
  # worker's relay (what the APIs must do; the bare proxy does not).
  report "proxy (for reading): against the bare proxy over TLS to the relay at c=64: API CPU per request $api_cpu µs = $(awk -v a="$api_cpu" -v b="${cpu[bare-tls-chat-64]}" 'BEGIN { printf "%d", (b > 0 ? a / b * 100 : 0) }')% of bare-tls's ${cpu[bare-tls-chat-64]} µs (bare-tls = $(awk -v a="${cpu[bare-tls-chat-64]}" -v b="$bare_cpu" 'BEGIN { printf "%d", (b > 0 ? a / b * 100 : 0) }')% of bare), throughput $((rps[api-chat-64] * 100 / (rps[bare-tls-chat-64] > 0 ? rps[bare-tls-chat-64] : 1)))% of bare-tls's ${rps[bare-tls-chat-64]} req/s (bare-tls = $((rps[bare-tls-chat-64] * 100 / (rps[bare-chat-64] > 0 ? rps[bare-chat-64] : 1)))% of bare's: the relay's TLS shares core 1 with wrk and the engine, so no proxy that reaches the worker over TLS gets more of bare's throughput here)"
  added=$((p50[api-chat-1] - p50[direct-chat-1]))
  report "proxy target: API added p50 at c=1 $added µs over direct (bare proxy +$((p50[bare-chat-1] - p50[direct-chat-1])) µs) (target ≤ $PROXY_ADDED_P50_US µs): $(verdict "added <= PROXY_ADDED_P50_US")"
  report "proxy target: API resident memory during the c=64 chat load at most $api_rss MiB (before the runs $api_idle MiB; the in-memory metering replica's at most $memory_rss MiB) (target ≤ $PROXY_RSS_MAX_MIB MiB): $(at_most "$api_rss" "$PROXY_RSS_MAX_MIB")"
}
