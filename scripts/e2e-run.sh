#!/usr/bin/env bash
# The dashboard's browser test against the whole stack (a suite of
# `make test`: scripts/test.sh frontend_e2e).
#
#  1. a fresh state dir (mktemp -d) with its private PostgreSQL and Redis
#     (DATABASE_URL / REDIS_URL are ignored: nothing shared is touched), free
#     ports for the API and the orchestrator, mock VMs on a /24 of
#     127.0.160-179.x (E2E_MOCK_FIRST_ADDRESS overrides);
#  2. scripts/run.sh (what `make run` runs: builds, migrates, serves the
#     built dashboard at /, starts the orchestrator) in its own process
#     group; waits for its banner and reads the admin password from it;
#  3. inventiv-frontend/e2e/run.mjs with FULL=1 and OUTBOX_DIR set to the
#     state dir's outbox (invitation mails as .eml files): every acceptance
#     step of the dashboard, screenshots in inventiv-frontend/screenshots/
#     (gitignored; E2E_SCREENSHOTS overrides);
#  4. SIGINT to run.sh's group (it stops the API, the orchestrator, the mock
#     VMs and the private services), then the state dir is deleted.
#
# E2E_KEEP_STATE=1 keeps the state dir for a post-mortem. Needs: Chromium at
# /usr/bin/chromium (test.sh installs Debian's), node and npm, curl, setsid,
# and what `make run` needs for the mock provider.

# shellcheck disable=SC2317 # cleanup is called from traps
set -euo pipefail

LOG_TAG=e2e
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

BANNER_TIMEOUT_SECS=${E2E_BANNER_TIMEOUT_SECS:-300}
T0=$SECONDS

newcomer_environment

STATE=$(mktemp -d "${TMPDIR:-/tmp}/inventiv-e2e.XXXXXX")

cleanup() {
  local rc=$?
  trap '' INT TERM
  trap - EXIT
  set +e
  stack_stop "$STATE" "${E2E_KEEP_STATE:-0}" "$rc"
  log "browser test $( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $((SECONDS - T0))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v setsid >/dev/null || die "setsid (util-linux) is required"
command -v node >/dev/null || die "node is missing: install Node.js 20 and npm"
[[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || die "no Chromium at ${CHROMIUM:-/usr/bin/chromium} (Debian: apt-get install chromium)"

API_PORT=$(free_port 8001 8003)
ORCH_PORT=$(free_port 8001 8003 "$API_PORT")
METRICS_PORT=$(free_port 8001 8003 8004 "$API_PORT" "$ORCH_PORT")
ORCH_METRICS_PORT=$(free_port 8001 8002 8003 8004 "$API_PORT" "$ORCH_PORT" "$METRICS_PORT")
MOCK_FIRST_ADDRESS=${E2E_MOCK_FIRST_ADDRESS:-127.0.$((160 + RANDOM % 20)).1}
BASE_URL="http://127.0.0.1:$API_PORT"
# The browser test saves Scaleway credentials and verifies them: the check
# must fail (a refused connection, retried with backoff for ~8 s) without
# ever reaching the real Scaleway.
UNREACHABLE_SCALEWAY=http://127.0.0.1:1
# The usage drift job every 2 s (instead of 5 min) over a window ending 1 s
# ago: the instance page's metering check has a verdict within the run.

log "scripts/run.sh (API $BASE_URL, orchestrator port $ORCH_PORT, mock VMs from $MOCK_FIRST_ADDRESS, state $STATE)"
stack_start "$STATE" INVENTIV_API_ADDR="127.0.0.1:$API_PORT" \
  INVENTIV_ORCHESTRATOR_ADDR="127.0.0.1:$ORCH_PORT" INVENTIV_METRICS_ADDR="127.0.0.1:$METRICS_PORT" \
  INVENTIV_ORCHESTRATOR_METRICS_ADDR="127.0.0.1:$ORCH_METRICS_PORT" \
  INVENTIV_MOCK_FIRST_ADDRESS="$MOCK_FIRST_ADDRESS" \
  INVENTIV_SCALEWAY_API_URL="$UNREACHABLE_SCALEWAY" \
  INVENTIV_USAGE_DRIFT_INTERVAL_SECS=2 INVENTIV_USAGE_DRIFT_SETTLE_SECS=1
stack_wait_banner "$BANNER_TIMEOUT_SECS"
log "stack up after $((SECONDS - T0))s; running e2e/run.mjs (FULL=1)"

(
  cd "$REPO_ROOT/inventiv-frontend"
  BASE_URL=$BASE_URL ADMIN_EMAIL=$ADMIN_EMAIL ADMIN_PASSWORD=$ADMIN_PASSWORD \
    OUTBOX_DIR="$STATE/outbox" FULL=1 DEPLOY_TIMEOUT_SECS=${E2E_DEPLOY_TIMEOUT_SECS:-120} \
    SCREENSHOTS=${E2E_SCREENSHOTS:-$REPO_ROOT/inventiv-frontend/screenshots} \
    node e2e/run.mjs
)
