# shellcheck shell=bash
# `scripts/bench.sh prefix`: prefix-cache-aware routing against least
# outstanding, in the same run, on the same engines (see bench_prefix);
# BENCH_PREFIX_RATE, BENCH_PREFIX_REQUESTS, BENCH_PREFIX_LOW_RATE set the
# workloads. Sourced by scripts/bench.sh (helpers: bench/lib.sh).

PREFIX_MODEL=Qwen/Qwen2.5-0.5B-Instruct
PREFIX_REPLICAS=4
# The shared-prefix workload (llm-d's "shared prefix" shape, scaled down):
# 32 groups × a 2,000-token prefix + a 200-token question of its own.
PREFIX_GROUPS=32
PREFIX_TOKENS=2000
PREFIX_QUESTION=200
PREFIX_RATE=${BENCH_PREFIX_RATE:-30}
PREFIX_REQUESTS=${BENCH_PREFIX_REQUESTS:-1200}
# The low-sharing workload: a 64-token common system prompt, then 2,136
# tokens of the request's own.
PREFIX_LOW_RATE=${BENCH_PREFIX_LOW_RATE:-20}
PREFIX_LOW_REQUESTS=${BENCH_PREFIX_LOW_REQUESTS:-800}
# Each engine: 20,000 prefill tokens/s (a 2,200-token miss is 110 ms of
# its compute, a hit on the 2,000-token prefix 10 ms), a KV cache of 2,048
# blocks (32k tokens: 16 of the 32 prefixes, so that a replica cannot hold
# them all and cache-blind routing thrashes it), 8 answer tokens at 200/s.
PREFIX_ENGINE_ARGS=(--prefill-tokens-per-second 20000 --prefix-cache-blocks 2048 --block-size 16
  --tokens-per-second 200 --output-len 8 --ttft-ms 0 --enable-prompt-tokens-details --workers 1)
PREFIX_PREFILL_RATE=20000
# Targets (issue 19, acceptance 1).
PREFIX_P50_CUT=50       # prefix-aware TTFT p50 at least 50 % lower
PREFIX_P90_CUT=70       # ... p90 at least 70 % lower
PREFIX_LOW_MAX_PCT=105  # low sharing: prefix-aware at most 5 % worse
PREFIX_DECISION_MAX_US=20

# prefix_engine_counters: "UNCACHED HITS QUERIES", summed over the engines
# (their /metrics on the plain ports in PREFIX_ENGINES).
prefix_engine_counters() {
  local e
  for e in "${PREFIX_ENGINES[@]}"; do
    curl -s --noproxy '*' --max-time 5 "http://$e/metrics"
  done | awk '$1 ~ /^vllm:prefix_cache_queries_total/ { q += $2 } $1 ~ /^vllm:prefix_cache_hits_total/ { h += $2 }
    END { printf "%d %d %d", q - h, h, q }'
}

# prefix_run NAME API_BASE GENERATOR_ARGS...: empties the engines' prefix
# caches, runs the load generator against API_BASE and sets RUN (its
# line) and UTIL (the engines' prefill compute busy, in % of the 4).
prefix_run() {
  local name=$1 base=$2 e c0 c1
  shift 2
  for e in "${PREFIX_ENGINES[@]}"; do
    curl -s --noproxy '*' --max-time 5 -o /dev/null -X POST "http://$e/reset_prefix_cache"
  done
  c0=$(prefix_engine_counters)
  log "prefix: $name"
  RUN=$("$TARGET_DIR/release/inventiv-prefix-bench" --addr "${base#http://}" --key "$PREFIX_KEY" \
    --model "$PREFIX_MODEL" "$@")
  c1=$(prefix_engine_counters)
  UTIL=$(awk -v a="$c0" -v b="$c1" -v r="$PREFIX_PREFILL_RATE" -v n="$PREFIX_REPLICAS" -v line="$RUN" 'BEGIN {
    split(a, x, " "); split(b, y, " "); match(line, /seconds=[0-9.]+/)
    s = substr(line, RSTART + 8, RLENGTH - 8) + 0
    printf "%.0f", (s > 0 ? (y[1] - x[1]) / r / s / n * 100 : 0) }')
  printf '    %s: %s (engines busy prefilling %s %%)\n' "$name" "$RUN" "$UTIL" >&2
}

# field LINE NAME: a key=value of the generator's line.
field() {
  sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"
}

# cut_pct BASE NEW: how much lower NEW is than BASE, in %.
cut_pct() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (a > 0 ? (a - b) / a * 100 : 0) }'
}

# The shared-prefix workload through two API replicas of one stack, the
# same engines behind both: one routing on prefixes (the default), one on
# least outstanding alone (INVENTIV_ROUTING_PREFIX_WEIGHT=0). Four mock
# engines, each behind its node's relay (TLS, a relay key, the certificate
# pinned: the path every request takes in production), registered as ready
# instances kept fresh by heartbeats. Each run sends the same requests at
# the same moments (one seed), after the engines' prefix caches were
# emptied: TTFT p50/p90 as the client sees it, the cache hit rate (cached /
# prompt tokens, as the engines report them in usage), the success rate,
# how busy the engines' prefill compute was. Then a low-sharing workload,
# where prefix scoring has nothing to win, to see what it costs. And the
# routing decision's own cost for a 4k-token prompt (examples/prefix_decision.rs),
# and a Redis round trip (what sharing the record between API replicas
# through Redis would add per request).
bench_prefix() {
  log "building the bench relay, the decision micro-bench and the prefix load generator (release)"
  cargo build --release --quiet -p inventiv-api --example bench_relay --example prefix_decision
  cargo build --release --quiet -p inventiv-testkit --bin inventiv-prefix-bench

  local one two
  one=$("$TARGET_DIR/release/examples/prefix_decision" 20000 1)
  two=$("$TARGET_DIR/release/examples/prefix_decision" 20000 2)
  printf '    %s\n    %s\n' "$one" "$two" >&2

  stack_up prefix
  api_team activate
  local i token instance engines=() relays=() instances=()
  PREFIX_ENGINES=()
  : >"$WORK/prefix-workers"
  for ((i = 0; i < PREFIX_REPLICAS; i++)); do
    start_logged "prefix/engine-$i" listening "" 10 "$TARGET_DIR/release/inventiv-mock-engine" \
      --port 0 --model "$PREFIX_MODEL" --seed "$i" "${PREFIX_ENGINE_ARGS[@]}"
    engines+=("$STARTED_PID")
    PREFIX_ENGINES+=("$(client_addr "$SERVER_ADDR")")
    token=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    instance=$(psql_db -tA -c "INSERT INTO instances (id, organization_id, name, provider, zone, instance_type,
        model_id, status, progress, worker_token_hash, worker_status, worker_engine_ready, last_heartbeat_at,
        started_at)
      VALUES (gen_random_uuid(), '$ORG_ID', 'bench-prefix-$i', 'mock', 'mock-zone-1', 'mock-1gpu-24g', '$PREFIX_MODEL',
        'ready', 100, sha256(convert_to('$token', 'UTF8')), 'ready', true, now(), now())
      RETURNING id" | head -n 1)
    instances+=("$instance")
    printf '%s %s\n' "$instance" "$token" >>"$WORK/prefix-workers"
    start_logged "prefix/relay-$i" listening "" 30 \
      env DATABASE_URL="$DB_URL" INVENTIV_ENCRYPTION_KEY="$STACK_ENCRYPTION_KEY" \
      "$TARGET_DIR/release/examples/bench_relay" "${PREFIX_ENGINES[i]##*:}" "$instance"
    relays+=("$STARTED_PID")
  done
  (while :; do
    while read -r instance token; do
      curl -s --noproxy '*' --max-time 5 -o /dev/null -X POST "$API/internal/workers/heartbeat" \
        -H "authorization: Bearer $token" -H 'content-type: application/json' \
        --data-binary "{\"schema_version\":2,\"instance_id\":\"$instance\",\"boot_id\":\"bench-prefix\",\"agent\":{\"version\":\"0.2.0\",\"bundle_sha256\":\"$(printf 'inventiv-bench' | sha256sum | cut -c1-64)\"},\"status\":\"ready\",\"model_id\":\"$PREFIX_MODEL\",\"engine\":{\"ready\":true,\"requests_running\":0,\"requests_waiting\":0,\"restarts\":0},\"sent_at\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}"
    done <"$WORK/prefix-workers"
    sleep 2
  done) &
  PIDS+=("$!")

  call POST /api-keys '{"name":"bench-prefix"}'
  expect 201 200
  PREFIX_KEY=$(jq -r .key <<<"$BODY")
  [[ $PREFIX_KEY == inv_* ]] || die "POST /api-keys gave no key: $BODY"
  start_api prefix/api-lo "$WORK/prefix/app-lo" "" INVENTIV_ROUTING_PREFIX_WEIGHT=0
  local lo_pid=$STARTED_PID lo
  lo="http://$(client_addr "$SERVER_ADDR")"
  # Each API routes once its table has the four workers behind their relays.
  local log addr deadline=$((SECONDS + 30))
  for log in "$WORK/prefix/api.log" "$WORK/prefix/api-lo.log"; do
    addr=$(grep -F '"message":"metrics listening"' "$log" | head -1 | sed -n 's/.*"addr":"\([^"]*\)".*/\1/p')
    until (($(curl -s --noproxy '*' --max-time 5 "http://$(client_addr "$addr")/metrics" \
      | grep -c '^inventiv_v1_outstanding_requests{') == PREFIX_REPLICAS)); do
      ((SECONDS < deadline)) || die "an API does not route to the $PREFIX_REPLICAS workers within 30 s ($log)"
      sleep 0.1
    done
  done

  local shared=(--groups "$PREFIX_GROUPS" --prefix-tokens "$PREFIX_TOKENS" --question-tokens "$PREFIX_QUESTION"
    --rate "$PREFIX_RATE" --requests "$PREFIX_REQUESTS" --seed 7)
  local low=(--groups 0 --common-tokens 64 --question-tokens $((PREFIX_TOKENS + PREFIX_QUESTION - 64))
    --rate "$PREFIX_LOW_RATE" --requests "$PREFIX_LOW_REQUESTS" --seed 11)
  local -A line util
  prefix_run "shared prefix, least outstanding" "$lo" "${shared[@]}"
  line[shared-lo]=$RUN util[shared-lo]=$UTIL
  prefix_run "shared prefix, prefix-aware" "$API" "${shared[@]}"
  line[shared-px]=$RUN util[shared-px]=$UTIL
  prefix_run "low sharing, least outstanding" "$lo" "${low[@]}"
  line[low-lo]=$RUN util[low-lo]=$UTIL
  prefix_run "low sharing, prefix-aware" "$API" "${low[@]}"
  line[low-px]=$RUN util[low-px]=$UTIL

  # A Redis round trip: 2,000 PINGs one after the other on one connection.
  local redis_rtt="" t0
  if command -v redis-cli >/dev/null; then
    t0=$(now_us)
    if redis-cli -u "$REDIS" -r 2000 PING >/dev/null 2>&1; then
      redis_rtt=$((($(now_us) - t0) / 2000))
    fi
  fi

  report "prefix: $PREFIX_REPLICAS mock engines (${PREFIX_ENGINE_ARGS[*]}) behind relays; two API replicas on the same engines, one prefix-aware (default settings), one least outstanding (INVENTIV_ROUTING_PREFIX_WEIGHT=0); streamed chats, TTFT client side; the engines' prefix caches emptied before each run"
  local k
  for k in shared-lo shared-px low-lo low-px; do
    report "prefix:   $k: ${line[$k]} (engines busy prefilling ${util[$k]} %)"
  done
  local lo50 lo90 px50 px90 cut50 cut90 ok_px sent
  lo50=$(field "${line[shared-lo]}" ttft_p50_ms) lo90=$(field "${line[shared-lo]}" ttft_p90_ms)
  px50=$(field "${line[shared-px]}" ttft_p50_ms) px90=$(field "${line[shared-px]}" ttft_p90_ms)
  cut50=$(cut_pct "$lo50" "$px50") cut90=$(cut_pct "$lo90" "$px90")
  report "prefix target: shared prefix TTFT p50 $px50 ms vs $lo50 ms least outstanding = ${cut50}% lower (target ≥ ${PREFIX_P50_CUT}%): $(verdict "cut50 >= PREFIX_P50_CUT")"
  report "prefix target: shared prefix TTFT p90 $px90 ms vs $lo90 ms least outstanding = ${cut90}% lower (target ≥ ${PREFIX_P90_CUT}%): $(verdict "cut90 >= PREFIX_P90_CUT")"
  report "prefix: cache hit rate (cached / prompt tokens): prefix-aware $(field "${line[shared-px]}" hit_pct)% vs least outstanding $(field "${line[shared-lo]}" hit_pct)%"
  for k in shared-px shared-lo low-px low-lo; do
    ok_px=$(field "${line[$k]}" ok) sent=$(field "${line[$k]}" sent)
    report "prefix target: $k success $ok_px/$sent (target 100 %): $(verdict "ok_px == sent")"
  done
  local low50 low90
  low50=$(awk -v a="$(field "${line[low-lo]}" ttft_p50_ms)" -v b="$(field "${line[low-px]}" ttft_p50_ms)" 'BEGIN { printf "%.0f", (a > 0 ? b / a * 100 : 0) }')
  low90=$(awk -v a="$(field "${line[low-lo]}" ttft_p90_ms)" -v b="$(field "${line[low-px]}" ttft_p90_ms)" 'BEGIN { printf "%.0f", (a > 0 ? b / a * 100 : 0) }')
  report "prefix target: low sharing TTFT prefix-aware / least outstanding: p50 ${low50}%, p90 ${low90}% (target ≤ ${PREFIX_LOW_MAX_PCT}%): $(verdict "low50 <= PREFIX_LOW_MAX_PCT && low90 <= PREFIX_LOW_MAX_PCT")"
  local mean p99
  mean=$(field "$one" mean_us) p99=$(field "$one" p99_us)
  report "prefix target: routing decision for a 4k-token prompt (parse, hash, match over 4 workers, order, record): mean $mean µs, p99 $p99 µs on one thread; two threads on one route at once: mean $(field "$two" mean_us) µs p99 $(field "$two" p99_us) µs (target < $PREFIX_DECISION_MAX_US µs): $(at_most "$p99" "$PREFIX_DECISION_MAX_US")"
  [[ -z $redis_rtt ]] || report "prefix: a Redis round trip from here: $redis_rtt µs (2,000 PINGs in a row on one connection): what sharing the prefix record between API replicas through Redis would add to every request, against the decision's $mean µs"
  stop_pid "$lo_pid"
  for i in "${relays[@]}" "${engines[@]}"; do stop_pid "$i"; done
  stack_down
}
