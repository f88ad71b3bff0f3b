# shellcheck shell=bash
# `scripts/bench.sh deploy`: POST /deployments → instance ready on the mock
# provider for successive deployments (each, the median, and where the
# median run's time goes: its status history and action log), then their
# termination. Sourced by scripts/bench.sh (helpers: bench/lib.sh).

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
