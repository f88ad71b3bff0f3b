# shellcheck shell=bash
# `scripts/bench.sh heartbeats`: 500 ready instances with worker tokens;
# (a) the heartbeats per second the API takes on one core, (b) the
# realistic load (each instance every 5 s): CPU and memory of the API, the
# orchestrator and PostgreSQL, and no instance wrongly declared
# worker_dead. Sourced by scripts/bench.sh (helpers: bench/lib.sh).

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
