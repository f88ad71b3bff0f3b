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
#   services     services that scale: (a) a streamed request held by a service
#                at zero replicas → its first token (decision, replica
#                created, ready), against the warm replica and a plain
#                deploy → ready; (b) a step in real load (slow mock engine)
#                → the scaling decision and the new replica ready, against
#                the floor the autoscaler's up window gives
#   fairness     a deployment shared by two organizations (one mock replica,
#                admission slots): A's TTFT p99 with B bursting to 10 × its
#                share against A alone, B's share of the capacity with A
#                idle, interactive against batch keys at 120 % offered load
#   prefix       prefix-cache-aware routing vs least outstanding on 4 mock
#                engines (prefill time ∝ uncached tokens, bounded KV caches):
#                the shared-prefix workload (32 groups × 2,000-token prefix +
#                200-token question) and a low-sharing one: TTFT p50/p90,
#                cache hit rate, success; the routing decision's cost for a
#                4k-token prompt; a Redis round trip for comparison
#   heartbeats   500 instances with worker tokens: (a) heartbeats/s the API
#                takes on one core, (b) the realistic load (500 instances
#                every 5 s): CPU and memory of the API and the orchestrator,
#                and no instance wrongly declared worker_dead
#
# deploy, services, heartbeats, fairness, proxy and prefix run the real stack from release builds:
# PostgreSQL and Redis from scripts/services.sh with a temporary state dir
# of their own (private servers; a configured DATABASE_URL gets a fresh
# database created and dropped by the bench, a configured REDIS_URL a key
# prefix of its own), then inventiv-api and inventiv-orchestrator on ports
# the kernel picks. Everything started is stopped, and its state deleted,
# when the bench ends. The private PostgreSQL is durable (fsync on) like a
# production one; INVENTIV_PG_FAST=1 turns fsync and synchronous commits off
# (see scripts/services.sh) to see what the API does without the disk.
#
# Layout: this file is the entry point (the arguments, the order, the
# summary); scripts/bench/lib.sh holds what the benches share (settings,
# processes pinned to a core, wrk runs, CPU and memory from /proc, the
# stack, the summary's lines); scripts/bench/<name>.sh holds one bench.
# Add a bench: write scripts/bench/<name>.sh with a `bench_<name>` function
# that starts what it needs with `start_server` or `stack_up` (stopped at
# exit) and measures with `load` or `wrk_run`; source it below and list
# <name> in BENCHES.
set -euo pipefail

LOG_TAG="bench"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

BENCHES=(mock_engine proxy prefix deploy services heartbeats fairness)

case ${1:-} in
  -h | --help)
    sed -n '2,/^set -euo pipefail$/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
    exit 0
    ;;
esac

# shellcheck source=scripts/bench/lib.sh
source scripts/bench/lib.sh
# shellcheck source=scripts/bench/mock_engine.sh
source scripts/bench/mock_engine.sh
# shellcheck source=scripts/bench/proxy.sh
source scripts/bench/proxy.sh
# shellcheck source=scripts/bench/prefix.sh
source scripts/bench/prefix.sh
# shellcheck source=scripts/bench/deploy.sh
source scripts/bench/deploy.sh
# shellcheck source=scripts/bench/services.sh
source scripts/bench/services.sh
# shellcheck source=scripts/bench/heartbeats.sh
source scripts/bench/heartbeats.sh
# shellcheck source=scripts/bench/fairness.sh
source scripts/bench/fairness.sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/inventiv-bench.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
    proxy | prefix | deploy | services | heartbeats | fairness)
      command -v jq >/dev/null || apt_install jq
      command -v curl >/dev/null || apt_install curl
      ;;
  esac
done
BUSIES=""
for name in "${selected[@]}"; do
  busy "$name"
  "bench_$name"
done
SUMMARY=("machine: $(nproc) cores; cores kept busy by other processes just before each bench: $BUSIES" "${SUMMARY[@]}")

printf '\n==> bench summary\n'
printf '%s\n' "${SUMMARY[@]}"
