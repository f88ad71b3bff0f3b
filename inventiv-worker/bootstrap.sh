#!/usr/bin/env bash
# Install and start the Inventiv worker agent on a node. The orchestrator
# uploads this script over SSH next to the agent bundle and its config, and
# runs it as root. Idempotent: running it again with the same bundle and
# config leaves the running agent alone; a new bundle or config restarts it.
#
#   bootstrap.sh --bundle PATH --sha256 HEX --config PATH --install-dir DIR [--mock]
#                [--data-device DEV] [--data-dir DIR] [--vllm-version VER]
#                [--python BIN] [--service-manager auto|systemd|background]
#                [--health-timeout SECONDS]
#   bootstrap.sh --stop --install-dir DIR
#
# Each option may come from the environment instead: INVENTIV_BOOTSTRAP_BUNDLE,
# _SHA256, _CONFIG, _INSTALL_DIR, _MOCK=1, _DATA_DEVICE, _DATA_DIR,
# _VLLM_VERSION, _PYTHON, _SERVICE_MANAGER, _HEALTH_TIMEOUT.
#
# --mock skips the GPU steps (no data volume, no NVIDIA check, no vLLM): the
# engine is whatever the config's engine_command names. It also implies the
# background service unless --service-manager systemd is given, so that mock
# instances sharing one host never fight over one systemd unit.
#
# Protocol on stdout, one line each, for the orchestrator to follow:
#   ::phase::NAME            a step starts (CHECK_BUNDLE PREPARE_DIRS
#                            MOUNT_DATA_VOLUME NVIDIA_CHECK PYTHON_VENV
#                            INSTALL_RELAY INSTALL_AGENT INSTALL_VLLM
#                            START_AGENT DONE)
#   ::phase-skip::NAME why   a step that does not apply here
#   ::error::NAME message    the step failed; the script exits non-zero
#   ::relay-cert::HEX        the SHA-256 of the relay's certificate (DER),
#                            which the control plane pins
# Other lines are for humans. Exit codes: 0 done, 2 usage, 3 bundle checksum
# mismatch, 1 any other failure.
#
# Layout of DIR: releases/<sha256>/ (extracted bundle + bundle.tar.gz),
# current -> releases/<sha256>, venv/, config.json (0600), bin/, run/
# (pidfile, stamp), logs/agent.out (the agent's stdout/stderr when it runs
# without systemd), secrets/ (0700) with hf_token (0600): the organization's
# Hugging Face token for a gated model, written there by the orchestrator
# before this script runs and named by the config's hf_token_file; the agent
# reads it into its engine's HF_TOKEN. Also scaleway_poweroff_key (0600): the
# organization's Scaleway secret key when it opted in to the dead-man switch's
# power-off through Scaleway's API (the config's dead_man_key_file). And
# relay.pem (0600): the certificate and private key of the relay (HAProxy, the
# node's only open OpenAI port), made here once with openssl; the private key
# never leaves the node, the certificate's SHA-256 is printed for the pin.
set -euo pipefail
umask 022

PHASE=ARGS
phase() {
  PHASE=$1
  printf '::phase::%s\n' "$1"
}
skip() {
  printf '::phase-skip::%s %s\n' "$1" "$2"
}
fail() { # fail MESSAGE [EXIT_CODE]
  printf '::error::%s %s\n' "$PHASE" "$1"
  exit "${2:-1}"
}
info() { printf '  %s\n' "$*"; }
# shellcheck disable=SC2154 # rc is set inside the trap
trap 'rc=$?; printf "::error::%s unexpected failure at line %s (exit %s)\n" "$PHASE" "$LINENO" "$rc"; exit 1' ERR

BUNDLE=${INVENTIV_BOOTSTRAP_BUNDLE:-}
SHA256=${INVENTIV_BOOTSTRAP_SHA256:-}
CONFIG=${INVENTIV_BOOTSTRAP_CONFIG:-}
INSTALL_DIR=${INVENTIV_BOOTSTRAP_INSTALL_DIR:-}
MOCK=${INVENTIV_BOOTSTRAP_MOCK:-0}
DATA_DEVICE=${INVENTIV_BOOTSTRAP_DATA_DEVICE:-}
DATA_DIR=${INVENTIV_BOOTSTRAP_DATA_DIR:-/opt/inventiv-data}
VLLM_VERSION=${INVENTIV_BOOTSTRAP_VLLM_VERSION:-0.33.0}
PYTHON=${INVENTIV_BOOTSTRAP_PYTHON:-python3}
SERVICE_MANAGER=${INVENTIV_BOOTSTRAP_SERVICE_MANAGER:-auto}
HEALTH_TIMEOUT=${INVENTIV_BOOTSTRAP_HEALTH_TIMEOUT:-90}
ACTION=install
SERVICE_NAME=inventiv-agent

usage() { fail "$1 (see the header of $0)" 2; }
while (($#)); do
  case $1 in
    --bundle) BUNDLE=${2-}; shift 2 || usage "--bundle needs a path" ;;
    --sha256) SHA256=${2-}; shift 2 || usage "--sha256 needs a value" ;;
    --config) CONFIG=${2-}; shift 2 || usage "--config needs a path" ;;
    --install-dir) INSTALL_DIR=${2-}; shift 2 || usage "--install-dir needs a path" ;;
    --data-device) DATA_DEVICE=${2-}; shift 2 || usage "--data-device needs a device" ;;
    --data-dir) DATA_DIR=${2-}; shift 2 || usage "--data-dir needs a path" ;;
    --vllm-version) VLLM_VERSION=${2-}; shift 2 || usage "--vllm-version needs a version" ;;
    --python) PYTHON=${2-}; shift 2 || usage "--python needs a program" ;;
    --service-manager) SERVICE_MANAGER=${2-}; shift 2 || usage "--service-manager needs a value" ;;
    --health-timeout) HEALTH_TIMEOUT=${2-}; shift 2 || usage "--health-timeout needs seconds" ;;
    --mock) MOCK=1; shift ;;
    --stop) ACTION=stop; shift ;;
    -h | --help) sed -n '2,46p' "$0"; exit 0 ;;
    *) usage "unknown argument '$1'" ;;
  esac
done
[[ -n $INSTALL_DIR ]] || usage "--install-dir is required"
[[ $INSTALL_DIR == /* ]] || INSTALL_DIR=$(pwd)/$INSTALL_DIR
case $SERVICE_MANAGER in auto | systemd | background) ;; *) usage "bad --service-manager" ;; esac
[[ $HEALTH_TIMEOUT =~ ^[0-9]+$ ]] || usage "--health-timeout must be a number of seconds"

D=$INSTALL_DIR
PIDFILE=$D/run/agent.pid
STAMPFILE=$D/run/agent.stamp
UNIT=/etc/systemd/system/$SERVICE_NAME.service

use_systemd() {
  case $SERVICE_MANAGER in
    systemd) return 0 ;;
    background) return 1 ;;
  esac
  ((MOCK == 0)) && [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null && [[ $(id -u) == 0 ]]
}

sha256_of() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | cut -d' ' -f1
  else
    "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

# --- the background service (no systemd) -----------------------------------------

supervisor_pid() { # prints the pid of a live supervisor of this install dir
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$D/bin/agent-supervisor.sh" || return 1
  printf '%s\n' "$pid"
}

stop_background() {
  local pid i
  pid=$(supervisor_pid) || return 0
  info "stopping the agent (supervisor pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  # The agent drains (up to its drain_timeout_s) and stops its engines.
  for ((i = 0; i < 1200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    info "still running after 120 s: SIGKILL to its process group"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

write_supervisor() {
  cat >"$D/bin/agent-supervisor.sh.tmp" <<EOF
#!/usr/bin/env bash
# Generated by bootstrap.sh: runs the agent and restarts it when it dies with
# a non-zero status (as systemd's Restart=on-failure). SIGTERM drains it.
set -u
D='$D'
# Not the caller's directory: python -m would import a package found there.
cd "\$D" || exit 1
echo \$\$ >"\$D/run/agent.pid"
child=""
stop() {
  if [[ -n \$child ]]; then
    kill -TERM "\$child" 2>/dev/null
    wait "\$child"
  fi
  rm -f "\$D/run/agent.pid"
  exit 0
}
trap stop TERM INT
export PYTHONPATH="\$D/current" PYTHONUNBUFFERED=1
while :; do
  "\$D/venv/bin/python" -m inventiv_agent --config "\$D/config.json" &
  child=\$!
  wait "\$child"
  rc=\$?
  child=""
  if ((rc == 0)); then
    rm -f "\$D/run/agent.pid"
    exit 0
  fi
  echo "[agent-supervisor] \$(date -u +%FT%TZ) agent exited with status \$rc; restarting in 2 s" >&2
  sleep 2 &
  wait \$!
done
EOF
  chmod 755 "$D/bin/agent-supervisor.sh.tmp"
  mv -f "$D/bin/agent-supervisor.sh.tmp" "$D/bin/agent-supervisor.sh"
}

start_background() {
  local stamp=$1 pid i
  if pid=$(supervisor_pid); then
    if [[ $(cat "$STAMPFILE" 2>/dev/null) == "$stamp" ]]; then
      info "agent already running with this bundle and config (supervisor pid $pid)"
      return 0
    fi
    info "agent running with another bundle or config: restarting it"
    stop_background
  fi
  write_supervisor
  rm -f "$PIDFILE"
  # setsid + nohup: out of the SSH session; every fd redirected so that SSH
  # does not wait for it; fd 9 (the bootstrap lock) closed.
  setsid nohup "$D/bin/agent-supervisor.sh" >>"$D/logs/agent.out" 2>&1 </dev/null 9>&- &
  for ((i = 0; i < 100; i++)); do
    pid=$(supervisor_pid) && break
    sleep 0.1
  done
  [[ -n ${pid:-} ]] || fail "the agent supervisor did not start (see $D/logs/agent.out)"
  printf '%s\n' "$stamp" >"$STAMPFILE"
  info "agent started in the background (supervisor pid $pid, output $D/logs/agent.out)"
}

# --- the systemd service ------------------------------------------------------------

start_systemd() {
  local stamp=$1 stop_timeout=$2 unit_text
  unit_text="[Unit]
Description=Inventiv worker agent
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
Environment=PYTHONPATH=$D/current
Environment=PYTHONUNBUFFERED=1
WorkingDirectory=$D
ExecStart=$D/venv/bin/python -m inventiv_agent --config $D/config.json
Restart=on-failure
RestartSec=2
# SIGTERM to the agent only: it drains, then stops its engines itself.
KillMode=mixed
TimeoutStopSec=$stop_timeout

[Install]
WantedBy=multi-user.target
"
  if [[ ! -f $UNIT || $(cat "$UNIT") != "$unit_text" ]]; then
    printf '%s' "$unit_text" >"$UNIT"
    systemctl daemon-reload
  fi
  systemctl enable "$SERVICE_NAME" >/dev/null 2>&1 || fail "systemctl enable $SERVICE_NAME failed"
  if systemctl is-active --quiet "$SERVICE_NAME" && [[ $(cat "$STAMPFILE" 2>/dev/null) == "$stamp" ]]; then
    info "agent already running with this bundle and config (systemd unit $SERVICE_NAME)"
    return 0
  fi
  systemctl restart "$SERVICE_NAME" || fail "systemctl restart $SERVICE_NAME failed"
  printf '%s\n' "$stamp" >"$STAMPFILE"
  info "agent started as systemd unit $SERVICE_NAME"
}

# --- stop ---------------------------------------------------------------------------

if [[ $ACTION == stop ]]; then
  PHASE=STOP
  if use_systemd && [[ -f $UNIT ]]; then
    systemctl stop "$SERVICE_NAME" || fail "systemctl stop $SERVICE_NAME failed"
  fi
  stop_background
  rm -f "$STAMPFILE"
  printf '::phase::STOPPED\n'
  exit 0
fi

# --- install ------------------------------------------------------------------------

phase CHECK_BUNDLE
[[ -n $BUNDLE ]] || fail "--bundle is required" 2
[[ -n $SHA256 ]] || fail "--sha256 is required" 2
[[ -n $CONFIG ]] || fail "--config is required" 2
[[ -f $BUNDLE ]] || fail "bundle $BUNDLE not found"
[[ -f $CONFIG ]] || fail "config $CONFIG not found"
expected=$(tr 'A-F' 'a-f' <<<"$SHA256")
[[ $expected =~ ^[0-9a-f]{64}$ ]] || fail "--sha256 must be 64 hex digits" 2
got=$(sha256_of "$BUNDLE")
[[ $got == "$expected" ]] || fail "checksum mismatch expected $expected got $got" 3
info "bundle $BUNDLE verified ($got)"

phase PREPARE_DIRS
mkdir -p "$D"/{releases,bin,run,logs}
chmod 0755 "$D"
if [[ -d $D/secrets ]]; then
  # Only the user running the agent and its engine may read them, whatever
  # happened to the modes since they were written.
  chmod 0700 "$D/secrets"
  find "$D/secrets" -type f -exec chmod 0600 {} +
fi
if command -v flock >/dev/null; then
  # A retried bootstrap waits for the one still running instead of racing it.
  exec 9>"$D/run/bootstrap.lock"
  flock -w 600 9 || fail "another bootstrap holds $D/run/bootstrap.lock"
fi

if ((MOCK)); then
  skip MOUNT_DATA_VOLUME "mock mode"
elif [[ -z $DATA_DEVICE ]]; then
  skip MOUNT_DATA_VOLUME "no data device given"
else
  phase MOUNT_DATA_VOLUME
  [[ -b $DATA_DEVICE ]] || fail "$DATA_DEVICE is not a block device"
  mkdir -p "$DATA_DIR"
  if mountpoint -q "$DATA_DIR"; then
    info "$DATA_DIR already mounted"
  else
    if [[ -z $(blkid -o value -s TYPE "$DATA_DEVICE" 2>/dev/null || true) ]]; then
      info "formatting the empty device $DATA_DEVICE (ext4)"
      mkfs.ext4 -q -L inventiv-data "$DATA_DEVICE" >&2 || fail "mkfs.ext4 $DATA_DEVICE failed"
    fi
    mount "$DATA_DEVICE" "$DATA_DIR" || fail "mount $DATA_DEVICE $DATA_DIR failed"
  fi
  uuid=$(blkid -o value -s UUID "$DATA_DEVICE" 2>/dev/null || true)
  if [[ -n $uuid ]] && ! grep -q "UUID=$uuid" /etc/fstab; then
    printf 'UUID=%s %s ext4 defaults,nofail 0 2\n' "$uuid" "$DATA_DIR" >>/etc/fstab
  fi
fi

if ((MOCK)); then
  skip NVIDIA_CHECK "mock mode"
else
  phase NVIDIA_CHECK
  command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: no NVIDIA driver on this image"
  gpus=$(nvidia-smi -L 2>&1) || fail "nvidia-smi failed: ${gpus//$'\n'/ }"
  [[ $gpus == *GPU* ]] || fail "nvidia-smi lists no GPU"
  info "$(grep -c GPU <<<"$gpus") GPU(s): ${gpus//$'\n'/; }"
fi

phase PYTHON_VENV
command -v "$PYTHON" >/dev/null || fail "$PYTHON not found"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  fail "the agent needs Python >= 3.10, $PYTHON is $("$PYTHON" -V 2>&1)"
bundle_reqs() { tar -xzOf "$BUNDLE" requirements.txt 2>/dev/null | grep -Ev '^[[:space:]]*(#|$)' || true; }
need_pip=0
if ((!MOCK)) || [[ -n $(bundle_reqs) ]]; then need_pip=1; fi
venv_ok() { "$D/venv/bin/python" -c 'import sys' 2>/dev/null; }
if venv_ok; then
  info "venv $D/venv present ($("$D/venv/bin/python" -V 2>&1))"
else
  rm -rf "$D/venv"
  venv_args=()
  ((need_pip)) || venv_args=(--without-pip)
  if ! "$PYTHON" -m venv "${venv_args[@]}" "$D/venv" >&2; then
    if ((need_pip)) && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      info "installing python3-venv"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2 || fail "apt-get install python3-venv failed"
      rm -rf "$D/venv"
      "$PYTHON" -m venv "$D/venv" >&2 || fail "python -m venv failed"
    else
      fail "python -m venv failed"
    fi
  fi
fi
if ((need_pip)) && ! "$D/venv/bin/python" -m pip --version >/dev/null 2>&1; then
  "$D/venv/bin/python" -m ensurepip >&2 || fail "the venv has no pip and ensurepip failed"
fi

phase INSTALL_RELAY
# HAProxy (the relay in front of the engines) and openssl (its certificate)
# from the distribution.
relay_missing=()
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || relay_missing+=(haproxy)
command -v openssl >/dev/null || relay_missing+=(openssl)
if ((${#relay_missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    info "installing ${relay_missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${relay_missing[@]}" >&2 ||
      fail "apt-get install ${relay_missing[*]} failed"
  else
    fail "${relay_missing[*]} missing (Debian: apt-get install ${relay_missing[*]})"
  fi
fi
RELAY_PEM=$D/secrets/relay.pem
if [[ ! -s $RELAY_PEM ]]; then
  mkdir -p "$D/secrets"
  chmod 0700 "$D/secrets"
  rm -f "$D/secrets/relay.key.tmp" "$D/secrets/relay.crt.tmp"
  if ! made=$(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj /CN=inventiv-node -keyout "$D/secrets/relay.key.tmp" -out "$D/secrets/relay.crt.tmp" 2>&1); then
    fail "openssl could not make the relay certificate: ${made//$'\n'/ }"
  fi
  (umask 077 && cat "$D/secrets/relay.crt.tmp" "$D/secrets/relay.key.tmp" >"$RELAY_PEM.tmp")
  rm -f "$D/secrets/relay.key.tmp" "$D/secrets/relay.crt.tmp"
  mv -f "$RELAY_PEM.tmp" "$RELAY_PEM"
  info "made the relay certificate $RELAY_PEM"
fi
relay_cert_sha256=$(openssl x509 -in "$RELAY_PEM" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
[[ $relay_cert_sha256 =~ ^[0-9a-f]{64}$ ]] || fail "cannot read the relay certificate $RELAY_PEM"
printf '::relay-cert::%s\n' "$relay_cert_sha256"

phase INSTALL_AGENT
release=$D/releases/$got
if [[ ! -f $release/.complete ]]; then
  rm -rf "$release.tmp"
  mkdir -p "$release.tmp"
  tar -xzf "$BUNDLE" -C "$release.tmp" || fail "cannot extract $BUNDLE"
  cp "$BUNDLE" "$release.tmp/bundle.tar.gz"
  touch "$release.tmp/.complete"
  rm -rf "$release"
  mv "$release.tmp" "$release"
fi
if [[ -n $(bundle_reqs) ]]; then
  "$D/venv/bin/python" -m pip install -q --disable-pip-version-check -r "$release/requirements.txt" >&2 ||
    fail "pip install of the agent requirements failed"
fi
install -m 0600 "$CONFIG" "$D/config.json.new"
if ! resolved=$(cd "$D" && PYTHONPATH=$release "$D/venv/bin/python" -m inventiv_agent --check-config --config "$D/config.json.new" 2>&1); then
  rm -f "$D/config.json.new"
  fail "${resolved//$'\n'/ }"
fi
mv -f "$D/config.json.new" "$D/config.json"
ln -sfn "releases/$got" "$D/current.new"
mv -Tf "$D/current.new" "$D/current"
# host, port, stop timeout from the resolved config
read -r AGENT_HOST AGENT_PORT STOP_TIMEOUT < <("$D/venv/bin/python" -c '
import json, sys
c = json.loads(sys.argv[1])
host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(c["agent_host"], c["agent_host"])
print(host, c["agent_port"], int(c["drain_timeout_s"] + c["engine_stop_grace_s"] + 30))
' "$resolved")
info "agent $(cat "$release/build-info.json" 2>/dev/null || echo '(no build info)') installed in $release"

if ((MOCK)); then
  skip INSTALL_VLLM "mock mode"
else
  phase INSTALL_VLLM
  have=$("$D/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm"))' 2>/dev/null || true)
  if [[ $have == "$VLLM_VERSION" ]]; then
    info "vllm $have already installed"
  else
    info "installing vllm==$VLLM_VERSION (several GB; takes minutes)"
    "$D/venv/bin/python" -m pip install -q --disable-pip-version-check "vllm==$VLLM_VERSION" >&2 ||
      fail "pip install vllm==$VLLM_VERSION failed"
  fi
fi

phase START_AGENT
# A new certificate restarts the relay too.
stamp="$got $(sha256_of "$D/config.json") $relay_cert_sha256"
if use_systemd; then
  start_systemd "$stamp" "$STOP_TIMEOUT"
else
  start_background "$stamp"
fi
[[ $AGENT_HOST == *:* ]] && url_host="[$AGENT_HOST]" || url_host=$AGENT_HOST
healthz="http://$url_host:$AGENT_PORT/healthz"
if ! "$D/venv/bin/python" - "$healthz" "$HEALTH_TIMEOUT" <<'EOF'; then
import sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.2)
EOF
  fail "the agent did not answer $healthz within ${HEALTH_TIMEOUT}s (see $D/logs/agent.out)"
fi
info "agent healthy at $healthz"

phase DONE
