# shellcheck shell=bash
# `scripts/bench.sh services`: services that scale, on the mock provider
# (boot delay 0). Sourced by scripts/bench.sh (helpers: bench/lib.sh).
#
# (a) cold start: a service at zero (min 0, max 1) holds a streamed request;
#     the time from sending it to its first token, for SERVICES_COLD_RUNS
#     runs (the service back at zero between two), with where it goes (the
#     autoscaler's decision, the replica created, ready); against two
#     baselines of the same stack: the same request on the warm replica,
#     and a plain POST /deployments → ready.
# (b) scaling reaction: a service at 1 replica (max 2, 4 outstanding per
#     replica), the load steps from 0 to SERVICES_STEP_CLIENTS clients of a
#     slow mock engine (INVENTIV_MOCK_ENGINE_ARGS): the time from the step
#     to the decision (`scaled` in the timeline, desired_replicas seen) and
#     to the new replica ready, against the floor the settings give (the
#     up window; at most that plus a publishing interval and two
#     autoscaler intervals); every answer's status counted. No target is set for these: figures and ratios only.

SERVICES_MODEL="Qwen/Qwen2.5-0.5B-Instruct"
SERVICES_PLACEMENT='[{"provider":"mock","zone":"mock-zone-1","instance_type":"mock-1gpu-24g"}]'
SERVICES_COLD_RUNS=${BENCH_SERVICES_COLD_RUNS:-3}
SERVICES_STEP_CLIENTS=${BENCH_SERVICES_STEP_CLIENTS:-8}
SERVICES_UP_WINDOW_MS=${BENCH_SERVICES_UP_WINDOW_MS:-5000}
SERVICES_SLOW_ENGINE="--ttft-ms 300 --tokens-per-second 20"
# The defaults of the API's and the autoscaler's paces, said in the figures.
SERVICES_SIGNALS_MS=1000
SERVICES_AUTOSCALER_MS=1000

# ms_between FROM_US TO_US: milliseconds between two microsecond times.
ms_between() {
  printf '%s' $((($2 - $1) / 1000))
}

# ratio A B: A / B with 2 decimals.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'
}

# epoch_us RFC3339: a server time (the database's clock, this host's) in µs
# (JQ_TS and DEPLOY_BODY come from bench/deploy.sh).
epoch_us() {
  jq -rn --arg t "$1" "$JQ_TS"' $t | ts * 1000000 | floor'
}

# services_key: an API key of the team (KEY).
services_key() {
  call POST /api-keys '{"name":"bench-services"}'
  expect 201 200
  KEY=$(jq -r .key <<<"$BODY")
  [[ $KEY == inv_* ]] || die "POST /api-keys gave no key: $BODY"
}

# models_state STATE: waits (15 s at most) until /v1/models lists the model
# in STATE (cold, or any state when STATE is "").
models_state() {
  local want=$1 deadline=$((SECONDS + 15)) saved=$TOKEN
  TOKEN=$KEY
  until call GET /v1/models && [[ $CODE == 200 ]] \
    && jq -e --arg m "$SERVICES_MODEL" --arg s "$want" \
      '.data[] | select(.id == $m and ($s == "" or .inventiv.state == $s))' <<<"$BODY" >/dev/null; do
    ((SECONDS < deadline)) || die "/v1/models does not list $SERVICES_MODEL ${want:-at all} within 15 s: $BODY"
    sleep 0.05
  done
  TOKEN=$saved
}

# create_service JSON: POST /services with the model and the placement
# added; sets SERVICE_ID.
create_service() {
  call POST /services "$(jq -c --arg m "$SERVICES_MODEL" --argjson p "$SERVICES_PLACEMENT" \
    '. + {model_id: $m, placements: $p}' <<<"$1")"
  expect 201 202
  SERVICE_ID=$(jq -r .id <<<"$BODY")
}

# service_until JQ TIMEOUT_S WHAT: polls GET /services/ID every 50 ms until
# the jq expression JQ holds on it; sets SEEN_US.
service_until() {
  local deadline=$((SECONDS + $2))
  while :; do
    call GET "/services/$SERVICE_ID"
    expect 200
    if jq -e "$1" <<<"$BODY" >/dev/null; then
      SEEN_US=$(now_us)
      return 0
    fi
    ((SECONDS < deadline)) || die "the service is not $3 after $2 s: $(jq -c '{desired_replicas, replica_counts}' <<<"$BODY")"
    sleep 0.05
  done
}

# stream_ttft OUT: one streamed chat completion with KEY; writes "<sent µs>
# <first token µs> <status>" to OUT (first token: the first event with
# content; 0 when there was none).
stream_ttft() {
  local out=$1 chat sent first=0 line status
  chat="{\"model\":\"$SERVICES_MODEL\",\"stream\":true,\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"wake up\"}]}"
  sent=$(now_us)
  while IFS= read -r line; do
    if ((first == 0)) && [[ $line == *'"content":"'[^\"]* ]]; then first=$(now_us); fi
    status=$line
  done < <(curl -sN --noproxy '*' --max-time 300 -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' --data-binary "$chat" -w '\n%{http_code}\n' "$API/v1/chat/completions")
  printf '%s %s %s\n' "$sent" "$first" "$status" >"$out"
}

bench_services() {
  command -v jq >/dev/null || apt_install jq
  services_cold
  services_step
}

# (a) a held request's time to first token.
services_cold() {
  local first
  first=$(free_loopback)
  stack_up services_cold INVENTIV_MOCK_BOOT_DELAY_MS=0 INVENTIV_RECONCILE_INTERVAL_MS=100 \
    INVENTIV_WORKER_HEARTBEAT_SECS=1 INVENTIV_MOCK_FIRST_ADDRESS="$first"
  log "services (a): mock VMs from $first, boot delay 0, reconcile every 100 ms, agent heartbeat every 1 s, API signals every $SERVICES_SIGNALS_MS ms, autoscaler every $SERVICES_AUTOSCALER_MS ms"
  api_team activate
  services_key
  create_service '{"name":"cold","min_replicas":0,"max_replicas":1,"idle_window_s":2,"scale_down_cooldown_s":0}'

  local run sent tok status ttfts=() lines=() decided created ready warm=()
  for ((run = 1; run <= SERVICES_COLD_RUNS; run++)); do
    service_until '.desired_replicas == 0 and ([.replica_counts | to_entries[] | select(.key | IN("provisioning","booting","installing","starting","ready","draining","terminating")) | .value] | add // 0) == 0' 120 "at zero"
    models_state cold
    local since_events
    since_events=$(now_us)
    stream_ttft "$WORK/cold-$run"
    read -r sent tok status <"$WORK/cold-$run"
    [[ $status == 200 && $tok != 0 ]] || die "run $run: the held stream answered $status (first token: $tok)"
    # Server side: the decision (the newest scaling 0 → 1), the replica
    # created and ready (the newest replica).
    call GET "/services/$SERVICE_ID/events"
    expect 200
    decided=$(jq -r 'map(select(.kind == "scaled" and .from_replicas == 0 and .to_replicas == 1))[0].at' <<<"$BODY")
    call GET "/services/$SERVICE_ID"
    expect 200
    local replica
    replica=$(jq -r '.replicas[0].id' <<<"$BODY")
    created=$(jq -r '.replicas[0].created_at' <<<"$BODY")
    call GET "/instances/$replica/history"
    expect 200
    ready=$(jq -r 'map(select(.to_status == "ready"))[0].at' <<<"$BODY")
    decided=$(epoch_us "$decided")
    created=$(epoch_us "$created")
    ready=$(epoch_us "$ready")
    ((decided >= since_events)) || die "run $run: no scaling 0 → 1 after the request was sent"
    ttfts+=("$(ms_between "$sent" "$tok")")
    lines+=("run $run: first token ${ttfts[-1]} ms (decision +$(ms_between "$sent" "$decided"), replica created +$(ms_between "$sent" "$created"), ready +$(ms_between "$sent" "$ready"), ready → first token $(ms_between "$ready" "$tok"))")
    log "services (a) ${lines[-1]}"
    # The same request on the warm replica.
    stream_ttft "$WORK/warm-$run"
    read -r sent tok status <"$WORK/warm-$run"
    [[ $status == 200 && $tok != 0 ]] || die "run $run: the warm stream answered $status"
    warm+=("$(ms_between "$sent" "$tok")")
  done

  # A plain deployment of the same model → ready, in the same stack.
  local t0 deploy_ms id
  t0=$(now_us)
  call POST /deployments "$DEPLOY_BODY"
  expect 202
  id=$(jq -r .id <<<"$BODY")
  wait_status "$id" ready 90
  deploy_ms=$(ms_between "$t0" "$SEEN_US")
  call DELETE "/instances/$id"
  expect 202

  local median warm_median
  median=$(printf '%s\n' "${ttfts[@]}" | sort -n | sed -n "$(((SERVICES_COLD_RUNS + 1) / 2))p")
  warm_median=$(printf '%s\n' "${warm[@]}" | sort -n | sed -n "$(((SERVICES_COLD_RUNS + 1) / 2))p")
  report "services: a held streamed request at zero replicas (min 0, max 1; mock provider, boot delay 0) → its first token, $SERVICES_COLD_RUNS runs, client side:"
  local l
  for l in "${lines[@]}"; do report "    $l"; done
  report "services: cold first token median $median ms; the same request on the warm replica $warm_median ms (× $(ratio "$median" "$warm_median")); POST /deployments → ready $deploy_ms ms (cold first token / deploy → ready: $(ratio "$median" "$deploy_ms"))"
  stack_down
}

# step_client OUT: chat completions one after the other until
# $WORK/step.stop exists, each answer's status a line of OUT.
step_client() {
  local chat="{\"model\":\"$SERVICES_MODEL\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"under load\"}]}"
  while [[ ! -e $WORK/step.stop ]]; do
    curl -s --noproxy '*' --max-time 120 -o /dev/null -w '%{http_code}\n' -H "authorization: Bearer $KEY" \
      -H 'content-type: application/json' --data-binary "$chat" "$API/v1/chat/completions" >>"$1" || printf '000\n' >>"$1"
  done
}

# (b) the reaction to a step in load.
services_step() {
  local first
  first=$(free_loopback)
  stack_up services_step INVENTIV_MOCK_BOOT_DELAY_MS=0 INVENTIV_RECONCILE_INTERVAL_MS=100 \
    INVENTIV_WORKER_HEARTBEAT_SECS=1 INVENTIV_MOCK_FIRST_ADDRESS="$first" \
    INVENTIV_AUTOSCALER_UP_WINDOW_MS="$SERVICES_UP_WINDOW_MS" INVENTIV_MOCK_ENGINE_ARGS="$SERVICES_SLOW_ENGINE"
  log "services (b): engine '$SERVICES_SLOW_ENGINE', up window $SERVICES_UP_WINDOW_MS ms, autoscaler every $SERVICES_AUTOSCALER_MS ms, API signals every $SERVICES_SIGNALS_MS ms"
  api_team activate
  services_key
  create_service '{"name":"step","min_replicas":1,"max_replicas":2,"target_outstanding":4,"idle_window_s":3600,"scale_down_cooldown_s":0}'
  service_until '.replica_counts.ready == 1' 90 "ready at 1 replica"
  models_state ""

  local c step_us pids=()
  rm -f "$WORK/step.stop"
  step_us=$(now_us)
  for ((c = 0; c < SERVICES_STEP_CLIENTS; c++)); do
    : >"$WORK/step-$c"
    step_client "$WORK/step-$c" &
    pids+=("$!")
    PIDS+=("$!")
  done
  service_until '.desired_replicas == 2' 120 "scaled to 2"
  local seen_us=$SEEN_US
  service_until '.replica_counts.ready == 2' 120 "ready at 2 replicas"
  touch "$WORK/step.stop"
  local p
  for p in "${pids[@]}"; do stop_waited "$p"; done

  call GET "/services/$SERVICE_ID/events"
  expect 200
  local scaled reason decided
  scaled=$(jq -c 'map(select(.kind == "scaled" and .from_replicas == 1 and .to_replicas == 2))[0]' <<<"$BODY")
  reason=$(jq -r .reason <<<"$scaled")
  decided=$(epoch_us "$(jq -r .at <<<"$scaled")")
  call GET "/services/$SERVICE_ID"
  expect 200
  local replica ready
  replica=$(jq -r '.replicas[0].id' <<<"$BODY")
  call GET "/instances/$replica/history"
  expect 200
  ready=$(epoch_us "$(jq -r 'map(select(.to_status == "ready"))[0].at' <<<"$BODY")")

  local total failed ceiling decision_ms
  total=$(cat "$WORK"/step-* | wc -l)
  failed=$(cat "$WORK"/step-* | grep -vc '^200$' || true)
  # The first loaded sample is read at most a publishing interval plus an
  # autoscaler interval after the step; the decision comes an up window
  # after it, at the next pass.
  ceiling=$((SERVICES_UP_WINDOW_MS + SERVICES_SIGNALS_MS + 2 * SERVICES_AUTOSCALER_MS))
  decision_ms=$(ms_between "$step_us" "$decided")
  report "services: a step from 0 to $SERVICES_STEP_CLIENTS clients (engine $SERVICES_SLOW_ENGINE, 8 tokens; 4 outstanding per replica, 1 → 2): decision +$decision_ms ms after the step (desired_replicas seen +$(ms_between "$step_us" "$seen_us") ms), new replica ready +$(ms_between "$step_us" "$ready") ms (decision → ready $(ms_between "$decided" "$ready") ms)"
  report "services: decision against the floor, the up window $SERVICES_UP_WINDOW_MS ms: × $(ratio "$decision_ms" "$SERVICES_UP_WINDOW_MS") (at most the window + a publishing interval + two autoscaler intervals, $ceiling ms); reason \"$reason\"; $total requests during the run, $failed not 200"
  stack_down
}

# stop_waited PID: waits for a client that was told to stop; forgets it.
stop_waited() {
  local p keep=()
  wait "$1" 2>/dev/null || true
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}
