# shellcheck shell=bash
# `scripts/bench.sh heartbeats`: 10,000 ready instances with worker tokens
# (BENCH_HEARTBEAT_WORKERS); (a) the heartbeats per second the API takes on
# one core, with PostgreSQL's CPU and WAL bytes per heartbeat; (b) the
# realistic load, each instance every 5 s (2,000 heartbeats/s) for 20 s
# (BENCH_HEARTBEAT_SECONDS): CPU of the API, PostgreSQL (all its processes)
# and Redis, each and in total (goal: under one core), of the orchestrator
# (its watchdog watching them), and no instance wrongly declared
# worker_dead; (c) event → SSE client latency at 1,000 connected clients
# (BENCH_SSE_CLIENTS), p50 and p99 (goal p99 < 100 ms). Sourced by
# scripts/bench.sh (helpers: bench/lib.sh).

HEARTBEAT_INSTANCES=${BENCH_HEARTBEAT_WORKERS:-10000}
HEARTBEAT_EVERY_S=5
HEARTBEAT_SECONDS=${BENCH_HEARTBEAT_SECONDS:-20}
# (a): one API core must take 2× the realistic load of (b).
HEARTBEAT_TARGET=$((2 * HEARTBEAT_INSTANCES / HEARTBEAT_EVERY_S))
# The watchdog declares a worker dead after 15 s without heartbeat (3
# intervals; the default is 30 s), so that the 20 s of (b) catch
# heartbeats that do not get through or are written too late.
HEARTBEAT_TIMEOUT_S=15
HEARTBEAT_MODEL=Qwen/Qwen2.5-0.5B-Instruct
# The heartbeat path's cost before the batched writer (main before
# branch heartscale, 500 instances): PostgreSQL CPU and WAL per heartbeat.
HEARTBEAT_BEFORE="0.46 ms PostgreSQL CPU and ~840 WAL bytes per heartbeat"
SSE_CLIENTS=${BENCH_SSE_CLIENTS:-1000}
# One event per instance of the SSE organization, 20 a second.
SSE_EVENTS=100
SSE_P99_TARGET_MS=100

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

# hb_insert ORG COUNT PREFIX OUT: COUNT ready instances of ORG with worker
# tokens (43 base64url characters, the shape of a real one); writes
# "<instance id> <token>" lines to OUT.
hb_insert() {
  local org=$1 count=$2 prefix=$3 out=$4 n
  head -c $((count * 33)) /dev/urandom | base64 -w 44 | tr '+/' '-_' | cut -c1-43 \
    | awk '{ printf "%d\t%s\n", NR, $0 }' | head -n "$count" >"$WORK/$prefix-tokens.tsv"
  psql_db <<EOF
CREATE TEMP TABLE bench_tokens (n integer, token text);
\\copy bench_tokens FROM '$WORK/$prefix-tokens.tsv'
INSERT INTO instances (id, organization_id, name, provider, zone, instance_type, model_id, status, progress,
                       worker_token_hash, worker_status, worker_engine_ready, last_heartbeat_at, started_at)
SELECT gen_random_uuid(), '$org', '$prefix-' || lpad(n::text, 5, '0'), 'mock', 'mock-zone-1', 'mock-1gpu-24g',
       '$HEARTBEAT_MODEL', 'ready', 100, sha256(convert_to(token, 'UTF8')), 'ready', true, now(), now()
  FROM bench_tokens;
\\copy (SELECT i.id, t.token FROM bench_tokens t JOIN instances i ON i.worker_token_hash = sha256(convert_to(t.token, 'UTF8')) ORDER BY t.n) TO '$out' WITH (DELIMITER ' ')
EOF
  n=$(wc -l <"$out")
  ((n == count)) || die "$n instances inserted, not $count"
}

# hb_mark: CPU ticks of the API, PostgreSQL, Redis and the orchestrator, the
# WAL position and the time, into M_* (hb_since reads them).
hb_mark() {
  M_API=$(cpu_ticks "$API_PID")
  M_ORCH=$(cpu_ticks "$ORCH_PID")
  M_PG=0 M_REDIS=0
  [[ -z $PG_PID ]] || M_PG=$(tree_ticks "$PG_PID")
  [[ -z $REDIS_PID ]] || M_REDIS=$(cpu_ticks "$REDIS_PID")
  M_WAL=$(psql_db -tAc "SELECT pg_current_wal_lsn()")
  M_T=$(now_us)
}

# hb_since: what was used since hb_mark: D_API, D_PG, D_REDIS, D_ORCH (clock
# ticks), D_WAL (bytes), D_US (microseconds).
hb_since() {
  D_US=$(($(now_us) - M_T))
  D_API=$(($(cpu_ticks "$API_PID") - M_API))
  D_ORCH=$(($(cpu_ticks "$ORCH_PID") - M_ORCH))
  D_PG=0 D_REDIS=0
  [[ -z $PG_PID ]] || D_PG=$(($(tree_ticks "$PG_PID") - M_PG))
  [[ -z $REDIS_PID ]] || D_REDIS=$(($(cpu_ticks "$REDIS_PID") - M_REDIS))
  D_WAL=$(psql_db -tAc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$M_WAL')::bigint")
}

# cores TICKS MICROSECONDS: CPU use in cores, 2 decimals.
cores() {
  awk -v t="$1" -v hz="$CLK_TCK" -v us="$2" 'BEGIN { printf "%.2f", t / hz / (us / 1e6) }'
}

# The API writes heartbeats in batches (every INVENTIV_HEARTBEAT_FLUSH_MS,
# 1 s by default): a window ends after its last batch, so its figures
# hold the writes of its heartbeats.
hb_drain() {
  sleep 1.5
}

bench_heartbeats() {
  local first rate=$((HEARTBEAT_INSTANCES / HEARTBEAT_EVERY_S)) url n
  first=$(free_loopback)
  API_CPU=$SERVER_CPU
  # (a) goes round-robin over the instances as fast as the API answers, so
  # each comes back every HEARTBEAT_INSTANCES / (heartbeats/s) seconds: a
  # fast API would go under the 1 s default minimum interval per worker
  # and be answered 429 (a bench artefact: wrk_check fails on it). The
  # limit stays in the path, at a bound no run reaches (40,000/s); (b) and
  # (c) send each instance's heartbeats seconds apart.
  API_ENV=(INVENTIV_EVENTS_MAX_STREAMS_PER_USER=$((SSE_CLIENTS + 8))
    INVENTIV_HEARTBEAT_MIN_INTERVAL_MS=$((HEARTBEAT_INSTANCES / 40)))
  stack_up heartbeats INVENTIV_MOCK_BOOT_DELAY_MS=0 INVENTIV_MOCK_FIRST_ADDRESS="$first" \
    INVENTIV_HEARTBEAT_TIMEOUT_SECS="$HEARTBEAT_TIMEOUT_S"
  API_CPU=""
  API_ENV=()
  api_team
  local unmeasured=""
  [[ -n $PG_PID ]] || unmeasured+=" (PostgreSQL configured: its CPU not measured)"
  [[ -n $REDIS_PID ]] || unmeasured+=" (Redis configured: its CPU not measured)"

  log "heartbeats: inserting $HEARTBEAT_INSTANCES ready instances with worker tokens"
  hb_insert "$ORG_ID" "$HEARTBEAT_INSTANCES" bench-hb "$WORK/ids.txt"
  heartbeat_lua "$WORK/ids.txt" >"$WORK/heartbeat.lua"
  {
    cat "$WORK/heartbeat.lua"
    paced_lua "$rate" 32
  } >"$WORK/heartbeat-paced.lua"
  url="$API/internal/workers/heartbeat"

  # Idle: no heartbeat, the orchestrator's watchdog over the ready instances.
  hb_mark
  sleep 5
  hb_since
  report "heartbeats (idle, 5 s, $HEARTBEAT_INSTANCES ready instances, no heartbeat): API $(pct "$D_API" "$D_US")% of a core, PostgreSQL $(pct "$D_PG" "$D_US")%, Redis $(pct "$D_REDIS" "$D_US")%, orchestrator $(pct "$D_ORCH" "$D_US")%$unmeasured"

  # (a) Throughput: the API alone on core 0, wrk on core 1; PostgreSQL,
  # Redis and the orchestrator float over both cores.
  log "heartbeats (a): 8 connections, $DURATION, round-robin over $HEARTBEAT_INSTANCES instances"
  wrk_run 8 "$WARMUP" "$url" "$WORK/heartbeat.lua" /dev/null
  hb_drain
  hb_mark
  wrk_run 8 "$DURATION" "$url" "$WORK/heartbeat.lua" "$WORK/hb-a.out"
  hb_drain
  hb_since
  wrk_check "$WORK/hb-a.out"
  n=$REQUESTS
  report "heartbeats (a): $RPS heartbeats/s handled, API on 1 core, 8 connections, PostgreSQL $PG_DURABILITY (p50 $P50, p99 $P99) (target ≥ $HEARTBEAT_TARGET/s, 2× the load of (b)): $(verdict "RPS >= HEARTBEAT_TARGET")"
  report "heartbeats (a): per heartbeat: API $(ms_per "$D_API" "$n") CPU ms, PostgreSQL $(ms_per "$D_PG" "$n") CPU ms, Redis $(ms_per "$D_REDIS" "$n") CPU ms, $((D_WAL / (n > 0 ? n : 1))) WAL bytes (before the batched writer: $HEARTBEAT_BEFORE)$unmeasured"

  # (b) The realistic load: every instance once every HEARTBEAT_EVERY_S,
  # paced by wrk's delay() over 32 connections.
  log "heartbeats (b): $HEARTBEAT_INSTANCES instances every ${HEARTBEAT_EVERY_S} s = $rate/s, ${HEARTBEAT_SECONDS} s; orchestrator watchdog: dead after $HEARTBEAT_TIMEOUT_S s without heartbeat"
  local rss_api0 rss_orch0 rss_api1 rss_orch1 wrk_us total achieved
  rss_api0=$(rss_mib "$API_PID")
  rss_orch0=$(rss_mib "$ORCH_PID")
  hb_mark
  wrk_run 32 "${HEARTBEAT_SECONDS}s" "$url" "$WORK/heartbeat-paced.lua" "$WORK/hb-b.out"
  wrk_us=$(($(now_us) - M_T))
  hb_drain
  hb_since
  rss_api1=$(rss_mib "$API_PID")
  rss_orch1=$(rss_mib "$ORCH_PID")
  wrk_check "$WORK/hb-b.out"
  n=$REQUESTS
  # Over the whole window: the run and its last batch.
  total=$(cores $((D_API + D_PG + D_REDIS)) "$D_US")
  achieved=$(awk -v n="$n" -v us="$wrk_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
  report "heartbeats (b): $achieved heartbeats/s for ${HEARTBEAT_SECONDS} s (load of $HEARTBEAT_INSTANCES instances every ${HEARTBEAT_EVERY_S} s = $rate/s; p50 $P50, p99 $P99)"
  # wrk's pacing loses the slots of late answers (it never catches up in a
  # burst): the total is also given at the exact rate, scaled linearly.
  local scaled
  scaled=$(awk -v c="$total" -v r="$rate" -v a="$achieved" 'BEGIN { printf "%.2f", (a > 0 ? c * r / a : c) }')
  report "heartbeats (b): CPU in cores: API $(cores "$D_API" "$D_US"), PostgreSQL $(cores "$D_PG" "$D_US") (all its processes), Redis $(cores "$D_REDIS" "$D_US"); total $total, $scaled at exactly $rate/s (target < 1 core): $(at_most "$scaled" 0.999)$unmeasured"
  report "heartbeats (b): per heartbeat: API $(ms_per "$D_API" "$n") CPU ms, PostgreSQL $(ms_per "$D_PG" "$n") CPU ms, $((D_WAL / (n > 0 ? n : 1))) WAL bytes (before: $HEARTBEAT_BEFORE); API RSS $rss_api0 → $rss_api1 MiB"
  report "heartbeats (b): orchestrator $(cores "$D_ORCH" "$D_US") cores (its watchdog over $HEARTBEAT_INSTANCES ready instances every second), RSS $rss_orch0 → $rss_orch1 MiB"
  local dead_now dead_ever fresh
  dead_now=$(psql_db -tAc "SELECT count(*) FROM instances WHERE status = 'worker_dead'")
  dead_ever=$(psql_db -tAc "SELECT count(DISTINCT instance_id) FROM instance_state_history WHERE to_status = 'worker_dead'")
  fresh=$(psql_db -tAc "SELECT count(*) FROM instances WHERE organization_id = '$ORG_ID' AND last_heartbeat_at > now() - interval '$((HEARTBEAT_EVERY_S + 3)) seconds'")
  report "heartbeats (b): instances whose stored last heartbeat is under $((HEARTBEAT_EVERY_S + 3)) s old: $fresh of $HEARTBEAT_INSTANCES; declared worker_dead while heartbeats flowed: $dead_ever (now worker_dead: $dead_now) (expected all fresh, 0 dead): $(verdict "dead_ever == 0 && fresh == HEARTBEAT_INSTANCES")"

  # (c) Event → SSE client latency: SSE_CLIENTS clients of another
  # organization (its snapshot stays small), then one heartbeat from each of
  # its SSE_EVENTS instances, 20 a second: from sending each to every
  # client receiving its worker.heartbeat event. The API stays on core 0,
  # the clients run on core 1.
  log "heartbeats (c): $SSE_CLIENTS SSE clients, $SSE_EVENTS worker.heartbeat events, 20/s"
  local sse_org out p50 p99
  call POST /organizations '{"name":"Bench SSE"}'
  expect 200 201
  sse_org=$(jq -r .id <<<"$BODY")
  call PUT /organizations/current "{\"organization_id\":\"$sse_org\"}"
  expect 200
  TOKEN=$(jq -r .access_token <<<"$BODY")
  hb_insert "$sse_org" "$SSE_EVENTS" bench-sse "$WORK/sse-ids.txt"
  pin "$LOAD_CPU"
  hb_mark
  out=$("${PIN_CMD[@]+"${PIN_CMD[@]}"}" "$TARGET_DIR/release/inventiv-sse-bench" --addr "${API#http://}" \
    --token "$TOKEN" --workers "$WORK/sse-ids.txt" --clients "$SSE_CLIENTS" --rate 20) \
    || die "inventiv-sse-bench failed"
  hb_since
  log "heartbeats (c): $out"
  p50=$(sed -n 's/.* p50_ms=\([0-9.]*\).*/\1/p' <<<"$out")
  p99=$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$out")
  report "heartbeats (c): event → SSE client latency at $SSE_CLIENTS clients: p50 $p50 ms, p99 $p99 ms (target p99 < $SSE_P99_TARGET_MS ms): $(at_most "$p99" "$SSE_P99_TARGET_MS") ($out; API $(cores "$D_API" "$D_US") cores meanwhile)"
  stack_down
}
