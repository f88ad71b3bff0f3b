# shellcheck shell=bash
# `scripts/bench.sh fairness`: fair admission on a shared deployment
# (issue 19, acceptance 2 and 3). Sourced by scripts/bench.sh (helpers:
# bench/lib.sh).
#
# One mock replica (INVENTIV_MOCK_ENGINE_ARGS: a 100 ms first token, 50
# tokens/s, 8 tokens an answer) with FAIR_SLOTS admission slots
# (INVENTIV_ADMISSION_SLOTS_PER_WORKER); organization A serves it and
# shares it with B (equal weights: each one's share is FAIR_SLOTS / 2).
# Closed-loop streaming clients (inventiv-fair-bench) for FAIR_SECS each:
#   solo    A alone, FAIR_A_CLIENTS clients (under its share): its baseline
#   burst   A as in solo, and B at 10 × its share (5 × FAIR_SLOTS clients)
#           bursting in FAIR_LEAD_SECS after A started (A already uses it)
#   b-alone B as in burst, A idle (B starts once A's share has expired,
#           FAIR_IDLE_MS after A's last request): B's share of the capacity,
#           its rate × the solo mean duration / the slots
#   late-a  B as in b-alone, and A (idle until then) arriving into B's
#           saturation FAIR_LEAD_SECS later: the transient, no target
#   bands   A's interactive key at 60 % of the slots alone (its baseline,
#           once B's share has expired), then with A's batch key at 60 %
#           more (120 % offered) from FAIR_LEAD_SECS on
# Each phase measures the steady state the targets are about: admission
# does not preempt, so a flow arriving into slots another one already
# holds waits for their turnover (an answer's length) at first; that
# transient is printed apart, not hidden (see docs/architecture.md, Fair
# admission).
# Targets: A's TTFT p99 in burst ≤ 1.2 × solo, 100 % of A's requests
# answered; B alone ≥ 90 % of the capacity; interactive TTFT p99 at 120 %
# ≤ 1.2 × its baseline, batch requests answered 200 or 429 (nothing else).

FAIR_SLOTS=${BENCH_FAIR_SLOTS:-16}
FAIR_SECS=${BENCH_FAIR_SECS:-10}
FAIR_A_CLIENTS=${BENCH_FAIR_A_CLIENTS:-4}
FAIR_LEAD_SECS=1
# How long an organization keeps its share after its last request
# (INVENTIV_ADMISSION_IDLE_MS, the API's default).
FAIR_IDLE_MS=2000
FAIR_ENGINE="--ttft-ms 100 --tokens-per-second 50"
# The model of DEPLOY_BODY (bench/deploy.sh).
FAIR_MODEL="Qwen/Qwen2.5-0.5B-Instruct"

# fair_run OUT SECS FLOW...: the bench client for SECS on the load core (a
# flow name,key,model,clients[,after_ms]: see inventiv-fair-bench).
fair_run() {
  local out=$1 secs=$2 flows=() f
  shift 2
  for f in "$@"; do flows+=(--flow "$f"); done
  pin "$LOAD_CPU"
  "${PIN_CMD[@]+"${PIN_CMD[@]}"}" "$TARGET_DIR/release/inventiv-fair-bench" --api "$API" \
    --secs "$secs" "${flows[@]}" >"$out" || die "inventiv-fair-bench failed"
  sed 's/^/    /' "$out" >&2
}

# fair_field OUT FLOW FIELD: one figure of a flow's line.
fair_field() {
  awk -v f="flow=$2" -v k="$3" '$1 == f { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$1"
}

# fair_key NAME [PRIORITY]: an API key of the current organization (KEY).
fair_key() {
  call POST /api-keys "{\"name\":\"$1\",\"priority\":\"${2:-interactive}\"}"
  expect 201
  KEY=$(jq -r .key <<<"$BODY")
}

bench_fairness() {
  command -v jq >/dev/null || apt_install jq
  cargo build --release --quiet --bin inventiv-fair-bench
  local first
  first=$(free_loopback)
  API_ENV=("INVENTIV_ADMISSION_SLOTS_PER_WORKER=$FAIR_SLOTS" "INVENTIV_ADMISSION_IDLE_MS=$FAIR_IDLE_MS")
  stack_up fairness INVENTIV_MOCK_BOOT_DELAY_MS=0 INVENTIV_RECONCILE_INTERVAL_MS=100 \
    INVENTIV_WORKER_HEARTBEAT_SECS=1 INVENTIV_MOCK_FIRST_ADDRESS="$first" INVENTIV_MOCK_ENGINE_ARGS="$FAIR_ENGINE"
  API_ENV=()
  log "fairness: engine '$FAIR_ENGINE', $FAIR_SLOTS slots, $FAIR_SECS s a phase"

  # A: the admin's team, one replica, its offering shared with B.
  api_team activate
  local a_slug
  call GET /organizations/current
  expect 200
  a_slug=$(jq -r .organization.slug <<<"$BODY")
  call POST /deployments "$DEPLOY_BODY"
  expect 202
  wait_status "$(jq -r .id <<<"$BODY")" ready 90
  fair_key a
  local a_key=$KEY
  fair_key a-batch batch
  local a_batch=$KEY
  call POST /organizations/current/offerings "{\"model_code\":\"$FAIR_MODEL\",\"visibility\":\"private\"}"
  expect 201
  local offering
  offering=$(jq -r .id <<<"$BODY")
  call PATCH "/organizations/current/offerings/$offering" '{"technical_active":true,"economic_active":true}'
  expect 200
  call POST "/organizations/current/offerings/$offering/prices" '{"input_eur_per_1k":"0.001","output_eur_per_1k":"0.002"}'
  expect 201
  call POST /organizations '{"name":"Bench B"}'
  expect 200 201
  local b_org b_slug
  b_org=$(jq -r .id <<<"$BODY")
  b_slug=$(jq -r .slug <<<"$BODY")
  call POST "/organizations/current/offerings/$offering/shares" "{\"consumer_org_slug\":\"$b_slug\"}"
  expect 201
  call PUT /organizations/current "{\"organization_id\":\"$b_org\"}"
  expect 200
  TOKEN=$(jq -r .access_token <<<"$BODY")
  call POST "/organizations/current/available-offerings/$offering/accept"
  expect 200
  fair_key b
  local b_key=$KEY address="$a_slug/$FAIR_MODEL"
  local deadline=$((SECONDS + 15)) saved=$TOKEN
  TOKEN=$b_key
  until call GET /v1/models && jq -e --arg m "$address" '.data[] | select(.id == $m)' <<<"$BODY" >/dev/null; do
    ((SECONDS < deadline)) || die "B's /v1/models does not list $address within 15 s: $BODY"
    sleep 0.1
  done
  TOKEN=$saved

  local half=$((FAIR_SLOTS / 2)) burst=$((FAIR_SLOTS * 5)) band=$(((FAIR_SLOTS * 6 + 9) / 10))
  log "fairness: solo (A, $FAIR_A_CLIENTS clients)"
  fair_run "$WORK/fair-solo" "$FAIR_SECS" "a,$a_key,$FAIR_MODEL,$FAIR_A_CLIENTS"
  local lead=$FAIR_LEAD_SECS idle=$((FAIR_IDLE_MS / 1000 + 1))
  log "fairness: burst (A, $FAIR_A_CLIENTS clients; B, $burst clients = 10 × its share of $half slots, from ${lead} s on)"
  fair_run "$WORK/fair-burst" "$((FAIR_SECS + lead))" "a,$a_key,$FAIR_MODEL,$FAIR_A_CLIENTS" \
    "b,$b_key,$address,$burst,$((lead * 1000))"
  log "fairness: B alone ($burst clients, from ${idle} s on: A's share expired)"
  fair_run "$WORK/fair-b" "$((FAIR_SECS + idle))" "b,$b_key,$address,$burst,$((idle * 1000))"
  log "fairness: A arriving late into B's saturation ($FAIR_A_CLIENTS clients from ${lead} s on)"
  fair_run "$WORK/fair-late" "$((FAIR_SECS + lead))" "b,$b_key,$address,$burst" \
    "a,$a_key,$FAIR_MODEL,$FAIR_A_CLIENTS,$((lead * 1000))"
  log "fairness: bands (interactive $band clients alone, then with batch $band clients)"
  fair_run "$WORK/fair-int" "$((FAIR_SECS + idle))" "int,$a_key,$FAIR_MODEL,$band,$((idle * 1000))"
  fair_run "$WORK/fair-bands" "$((FAIR_SECS + lead))" "int,$a_key,$FAIR_MODEL,$band" \
    "batch,$a_batch,$FAIR_MODEL,$band,$((lead * 1000))"

  local solo_p99 burst_p99 a_req a_ok mean b_rate share ratio
  solo_p99=$(fair_field "$WORK/fair-solo" a ttft_p99_ms)
  burst_p99=$(fair_field "$WORK/fair-burst" a ttft_p99_ms)
  a_req=$(fair_field "$WORK/fair-burst" a requests)
  a_ok=$(fair_field "$WORK/fair-burst" a ok)
  mean=$(fair_field "$WORK/fair-solo" a mean_ms)
  b_rate=$(fair_field "$WORK/fair-b" b ok_per_s)
  ratio=$(ratio "$burst_p99" "$solo_p99")
  share=$(awk -v r="$b_rate" -v m="$mean" -v s="$FAIR_SLOTS" 'BEGIN { printf "%.2f", r * m / 1000 / s }')
  report "fairness: A's TTFT p99 with B bursting 10× its share ${burst_p99} ms vs solo ${solo_p99} ms = ${ratio}× (target ≤ 1.2×): $(at_most "$ratio" 1.2); A answered $a_ok/$a_req (target 100 %): $(verdict "a_ok == a_req && a_req > 0"); B burst $(fair_field "$WORK/fair-burst" b ok_per_s) req/s, $(fair_field "$WORK/fair-burst" b ok) answered"
  report "fairness: A arriving into B's saturation (admission does not preempt): TTFT p50 $(fair_field "$WORK/fair-late" a ttft_p50_ms) ms, p99 $(fair_field "$WORK/fair-late" a ttft_p99_ms) ms vs solo ${solo_p99} ms (its first requests wait for B's answers to end; no target)"
  report "fairness: B alone $b_rate req/s × $mean ms / $FAIR_SLOTS slots = ${share} of the capacity (target ≥ 0.90): $(at_most 0.90 "$share")"
  local int_p99 bands_p99 b_ok b_429 b_other
  int_p99=$(fair_field "$WORK/fair-int" int ttft_p99_ms)
  bands_p99=$(fair_field "$WORK/fair-bands" int ttft_p99_ms)
  b_ok=$(fair_field "$WORK/fair-bands" batch ok)
  b_429=$(fair_field "$WORK/fair-bands" batch r429)
  b_other=$(fair_field "$WORK/fair-bands" batch other)
  ratio=$(ratio "$bands_p99" "$int_p99")
  report "fairness: at 120 % offered load, interactive TTFT p99 ${bands_p99} ms vs ${int_p99} ms alone = ${ratio}× (target ≤ 1.2×): $(at_most "$ratio" 1.2); batch: $b_ok answered (TTFT p50 $(fair_field "$WORK/fair-bands" batch ttft_p50_ms) ms), $b_429 got 429 with Retry-After, $b_other otherwise: $(verdict "b_other == 0")"
  stack_down
}
