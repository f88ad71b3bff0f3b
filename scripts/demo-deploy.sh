#!/usr/bin/env bash
# Deploys a model on the mock provider of a running `make run`, the way a
# user of the API does it, and shows it answering:
#
#  1. logs in as the administrator `make run` printed (INVENTIV_ADMIN_EMAIL,
#     INVENTIV_ADMIN_PASSWORD or $INVENTIV_STATE_DIR/admin-password);
#  2. uses the team organization "Demo" (creates it the first time) as the
#     session's current organization;
#  3. activates, technically and economically, the four catalog items of the
#     deployment: provider `mock`, zone `mock-zone-1`, instance type
#     `mock-1gpu-24g`, model `Qwen/Qwen2.5-0.5B-Instruct`;
#  4. POST /deployments, then polls GET /instances/{id} until `ready`,
#     printing each status and progress change;
#  5. prints the node's address, creates an API key ("demo") and sends a
#     chat completion through the API's OpenAI proxy ($API/v1), which
#     reaches the engine through the node's relay (TLS, pinned certificate,
#     relay key; the engine itself listens on the node's loopback only).
#
# The instance keeps running; `--terminate ID` terminates it (and waits for
# `terminated`).
#
#   scripts/demo-deploy.sh [--api URL] [--timeout SECONDS] [--env-out FILE]
#   scripts/demo-deploy.sh [--api URL] [--timeout SECONDS] --terminate INSTANCE_ID
#
#   --api URL        the API (default http://$INVENTIV_API_ADDR, 127.0.0.1:8003)
#   --timeout SECS   how long to wait for `ready` (default 300)
#   --env-out FILE   also write INSTANCE_ID, INSTANCE_IP, ORGANIZATION_ID and
#                    ACCESS_TOKEN as shell assignments to FILE (mode 600);
#                    scripts/smoke-run.sh uses it
#
# Needs curl and python3 (to read JSON). Exit status: 0 when the model
# answered, 1 otherwise (the instance's error and its last steps are shown).
set -euo pipefail

LOG_TAG=demo
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
load_dotenv

API=""
TIMEOUT=300
ENV_OUT=""
TERMINATE=""
while (($#)); do
  case $1 in
    --api) API=${2:?--api needs a URL}; shift 2 ;;
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
    --env-out) ENV_OUT=${2:?--env-out needs a file}; shift 2 ;;
    --terminate) TERMINATE=${2:?--terminate needs an instance id}; shift 2 ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
[[ -n $API ]] || API="http://$(client_addr "${INVENTIV_API_ADDR:-127.0.0.1:8003}")"
API=${API%/}

PROVIDER=mock
ZONE=mock-zone-1
INSTANCE_TYPE=mock-1gpu-24g
MODEL=Qwen/Qwen2.5-0.5B-Instruct
# Their catalog ids (seeded by sqlx-migrations/).
ACTIVATIONS=(
  "provider/mock"
  "zone/8a1d0000-0000-4000-8000-000000000001"
  "instance_type/8a1e0000-0000-4000-8000-000000000001"
  "model/8a1f0000-0000-4000-8000-000000000001"
)
ORG_NAME=Demo

command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required (to read JSON)"

STATE_DIR=$(abs_path "${INVENTIV_STATE_DIR:-.local}")
EMAIL=${INVENTIV_ADMIN_EMAIL:-admin@inventiv.local}
PASSWORD=${INVENTIV_ADMIN_PASSWORD:-}
if [[ -z $PASSWORD && -s $STATE_DIR/admin-password ]]; then
  PASSWORD=$(head -n 1 "$STATE_DIR/admin-password")
fi
[[ -n $PASSWORD ]] || die "no admin password: set INVENTIV_ADMIN_PASSWORD (make run prints it) or run make run first"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TOKEN=""

# json EXPR: evaluates the Python expression EXPR on the JSON document d read
# from stdin; prints strings as they are, anything else as JSON.
json() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1], {"d": d})
print(v if isinstance(v, str) else json.dumps(v))
' "$1"
}

# call METHOD URL [JSON]: sets STATUS and BODY. Uses $TOKEN when set.
call() {
  local method=$1 url=$2 data=${3:-}
  local args=(-sS --noproxy '*' --max-time 30 -X "$method" -o "$WORK/body" -w '%{http_code}')
  [[ -n $TOKEN ]] && args+=(-H "authorization: Bearer $TOKEN")
  [[ -n $data ]] && args+=(-H 'content-type: application/json' --data-binary "$data")
  STATUS=$(curl "${args[@]}" "$url") || STATUS=curl-failed
  BODY=$(cat "$WORK/body" 2>/dev/null || true)
}

# expect CODE WHAT: dies unless the last call answered CODE.
expect() {
  [[ $STATUS == "$1" ]] || die "$2: expected HTTP $1, got $STATUS: ${BODY:0:500}"
}

call GET "$API/readyz"
[[ $STATUS == 200 ]] || die "$API/readyz answers $STATUS: is \`make run\` running? (--api URL to use another address)"

# --- log in, organization ---------------------------------------------------------
login_json=$(EMAIL=$EMAIL PASSWORD=$PASSWORD python3 -c '
import json, os
print(json.dumps({"email": os.environ["EMAIL"], "password": os.environ["PASSWORD"]}))')
call POST "$API/auth/login" "$login_json"
expect 200 "POST /auth/login as $EMAIL"
TOKEN=$(json 'd["access_token"]' <<<"$BODY")
log "logged in as $EMAIL"

call GET "$API/organizations"
expect 200 "GET /organizations"
ORG_ID=$(json "next((o['id'] for o in d if o['name'] == '$ORG_NAME' and o['kind'] == 'team'), '')" <<<"$BODY")
if [[ -z $ORG_ID ]]; then
  call POST "$API/organizations" "{\"name\":\"$ORG_NAME\"}"
  expect 201 "POST /organizations"
  ORG_ID=$(json 'd["id"]' <<<"$BODY")
  log "created the team organization $ORG_NAME ($ORG_ID)"
fi
call PUT "$API/organizations/current" "{\"organization_id\":\"$ORG_ID\"}"
expect 200 "PUT /organizations/current (switch to $ORG_NAME)"
TOKEN=$(json 'd["access_token"]' <<<"$BODY")
log "working in organization $ORG_NAME ($ORG_ID) as $(json 'd["role"]' <<<"$BODY")"

# wait_for ID WANTED: polls GET /instances/ID every second, printing each
# status and progress change, until its status is WANTED (returns 0), a
# failure status (returns 1) or the deadline (returns 2). BODY holds the
# instance.
wait_for() {
  local id=$1 want=$2 deadline=$((SECONDS + TIMEOUT)) t0=$SECONDS last="" status progress
  while :; do
    call GET "$API/instances/$id"
    expect 200 "GET /instances/$id"
    read -r status progress < <(json "'%s %s' % (d['status'], d['progress'])" <<<"$BODY")
    if [[ "$status $progress" != "$last" ]]; then
      log "$(printf '%4ss  %-13s %3s%%' "$((SECONDS - t0))" "$status" "$progress")"
      last="$status $progress"
    fi
    [[ $status == "$want" ]] && return 0
    case $status in
      provisioning_failed | startup_failed | worker_dead | terminated | archived)
        log "error: $(json "'%s: %s' % (d['error_code'], d['error_message'])" <<<"$BODY")"
        return 1
        ;;
    esac
    ((SECONDS < deadline)) || return 2
    sleep 1
  done
}

if [[ -n $TERMINATE ]]; then
  call DELETE "$API/instances/$TERMINATE"
  expect 202 "DELETE /instances/$TERMINATE"
  log "terminating instance $TERMINATE"
  rc=0
  wait_for "$TERMINATE" terminated || rc=$?
  ((rc == 0)) || die "instance $TERMINATE is not terminated (see GET /instances/$TERMINATE/actions)"
  log "instance $TERMINATE is terminated"
  exit 0
fi

# --- double activation --------------------------------------------------------------
for item in "${ACTIVATIONS[@]}"; do
  call PUT "$API/organizations/current/activations/$item" '{"technical":true,"economic":true}'
  expect 200 "PUT /organizations/current/activations/$item"
done
log "activated provider $PROVIDER, zone $ZONE, instance type $INSTANCE_TYPE, model $MODEL"

# --- deploy --------------------------------------------------------------------------
call POST "$API/deployments" \
  "{\"provider\":\"$PROVIDER\",\"zone\":\"$ZONE\",\"instance_type\":\"$INSTANCE_TYPE\",\"model_id\":\"$MODEL\"}"
expect 202 "POST /deployments"
ID=$(json 'd["id"]' <<<"$BODY")
log "deployment accepted: instance $ID ($(json 'd["name"]' <<<"$BODY"))"

show_failure() {
  call GET "$API/instances/$ID/actions"
  if [[ $STATUS == 200 ]]; then
    printf '[demo] last steps of instance %s:\n' "$ID" >&2
    json "'\n'.join('  %s %s %s' % (a['action_type'], a['status'], a['error_message'] or '') for a in d[-8:])" <<<"$BODY" >&2
  fi
}

t0=$SECONDS
rc=0
wait_for "$ID" ready || rc=$?
if ((rc != 0)); then
  show_failure
  ((rc == 2)) && die "instance $ID is not ready after ${TIMEOUT}s"
  die "instance $ID failed"
fi
IP=$(json 'd["ip_address"]' <<<"$BODY")
log "instance $ID is ready after $((SECONDS - t0))s on $IP"

if [[ -n $ENV_OUT ]]; then
  (umask 077 && {
    printf 'INSTANCE_ID=%s\n' "$(shell_quote "$ID")"
    printf 'INSTANCE_IP=%s\n' "$(shell_quote "$IP")"
    printf 'ORGANIZATION_ID=%s\n' "$(shell_quote "$ORG_ID")"
    printf 'ACCESS_TOKEN=%s\n' "$(shell_quote "$TOKEN")"
  } >"$ENV_OUT")
fi

# How to run this script again against the same make run.
SELF=scripts/demo-deploy.sh
[[ $STATE_DIR == "$REPO_ROOT/.local" ]] || SELF="INVENTIV_STATE_DIR=$(shell_quote "$STATE_DIR") $SELF"
[[ $API == http://127.0.0.1:8003 ]] || SELF="$SELF --api $API"

# --- the model answers -------------------------------------------------------------------
# Through the API's OpenAI proxy, as any client: the node's port is its
# relay, which serves only the control plane (pinned TLS, relay key).
call POST "$API/api-keys" '{"name":"demo"}'
expect 201 "POST /api-keys"
API_KEY=$(json 'd["key"]' <<<"$BODY")
chat_json="{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello to Inventiv Agents.\"}]}"
TOKEN_SAVED=$TOKEN
TOKEN=$API_KEY
# The API's routing table takes up to a second to see the new worker (503 until then).
deadline=$((SECONDS + 10))
while :; do
  call POST "$API/v1/chat/completions" "$chat_json"
  [[ $STATUS == 503 ]] && ((SECONDS < deadline)) || break
  sleep 0.5
done
TOKEN=$TOKEN_SAVED
expect 200 "POST $API/v1/chat/completions"
answer=$(json "d['choices'][0]['message']['content']" <<<"$BODY")
usage=$(json "'%s prompt + %s completion tokens' % (d['usage']['prompt_tokens'], d['usage']['completion_tokens'])" <<<"$BODY")

cat <<EOF

==============================================================================
  $MODEL is ready on the mock provider

  Instance          $ID
  Node              $IP (agent on :8090, relay on :8000, engine on loopback)
  Organization      $ORG_NAME ($ORG_ID)

  curl -s $API/v1/chat/completions -H 'content-type: application/json' \\
    -H 'authorization: Bearer $API_KEY' -d '$chat_json'
  answered ($usage):
    $answer

  Its steps: GET $API/instances/$ID/actions (as a member of $ORG_NAME)
  Terminate it:
    $SELF --terminate $ID
==============================================================================

EOF
