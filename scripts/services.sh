#!/usr/bin/env bash
# Private PostgreSQL + Redis for development and tests.
#
#   scripts/services.sh up        start (or reuse) them; prints `export ...` lines
#   eval "$(scripts/services.sh up)"            # the usual way to use `up`
#   source scripts/services.sh up               # same, from an interactive shell
#   scripts/services.sh down [postgres] [redis] stop what `up` started
#   scripts/services.sh status    what runs, on which port
#   scripts/services.sh purge     down, stop the mock VMs' processes, then delete
#                                 all data (the state dir)
#
# Only stdout carries the `export` lines; everything else goes to stderr.
#
# Configured vs private: when DATABASE_URL (or REDIS_URL) is set, it is used as
# is and nothing is started for it. Otherwise a private server is started,
# bound to 127.0.0.1 only, with its data in the state dir
# (INVENTIV_STATE_DIR, default .local, relative to the repository root):
#
#   $STATE_DIR/postgres/        PostgreSQL data directory (PGDATA)
#   $STATE_DIR/postgres.port    its port (picked once: 55432 or the next free one)
#   $STATE_DIR/redis/           Redis data (append-only file)
#   $STATE_DIR/redis.port       its port (picked once: 56379 or the next free one)
#   $STATE_DIR/run/             unix socket, pid files
#   $STATE_DIR/logs/            postgres.log, redis.log
#
# Data survives `down`/`up` and reboots; `purge` (make clean-state) deletes it.
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the
# `postgres` system user (created by Debian's postgresql package). That user
# must be able to traverse the state dir's path. If it cannot (say the repo is
# under /root, mode 700), we do NOT loosen permissions of your directories:
# the data dir goes to /var/lib/inventiv/<hash of the state dir>/postgres
# instead, and $STATE_DIR/postgres becomes a symlink to it (`purge` removes
# both).
#
# Missing binaries: as root, Debian's `postgresql` / `redis-server` packages
# are installed with apt-get; otherwise the exact command is printed and the
# script exits 1.
#
# INVENTIV_PG_FAST=1 (set by scripts/test.sh) turns off fsync and friends:
# much faster CREATE DATABASE, not crash-safe. Only for throw-away data.

# Sourced (`source scripts/services.sh up`): run in a child bash so that
# `set -e` never leaks into the interactive shell, then eval its exports here.
if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
  if __inventiv_out="$(bash "${BASH_SOURCE[0]}" "${@:-up}")"; then
    eval "$__inventiv_out"
    unset __inventiv_out
    return 0
  fi
  unset __inventiv_out
  return 1
fi

set -euo pipefail
umask 022 # the postgres user must be able to traverse what we create

LOG_TAG=services
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_dotenv

STATE_DIR=$(abs_path "${INVENTIV_STATE_DIR:-.local}")
case $STATE_DIR in
  / | "$REPO_ROOT" | "${HOME:-/}" | /var | /tmp | /work) die "refusing to use $STATE_DIR as INVENTIV_STATE_DIR" ;;
esac

PG_PREFERRED_PORT=55432
REDIS_PREFERRED_PORT=56379
PG_DATABASE=inventiv
PG_USER=postgres

# --------------------------------------------------------------------------
# ports

# A port is in use when any TCP socket has it as its local port: a
# listener, or a connection that got it as its ephemeral port (the kernel
# then refuses to bind it to a listener too).
port_in_use() {
  local p=$1 fd
  if command -v ss >/dev/null; then
    [[ -n $(ss -Htan "sport = :$p" 2>/dev/null) ]]
  else
    if { exec {fd}<>"/dev/tcp/127.0.0.1/$p"; } 2>/dev/null; then
      exec {fd}>&-
      return 0
    fi
    return 1
  fi
}

# pick_port PREFERRED [AVOID]: the first free port from PREFERRED upward.
pick_port() {
  local p=$1 avoid=${2:-} i
  for ((i = 0; i < 500; i++, p++)); do
    [[ $p == "$avoid" ]] && continue
    port_in_use "$p" || {
      printf '%s\n' "$p"
      return 0
    }
  done
  die "no free TCP port between $1 and $p"
}

# remembered_port NAME PREFERRED [AVOID]: the port kept in $STATE_DIR/NAME.port,
# or a newly picked one (remembered). Only call it when NAME is not running:
# a remembered port now taken by someone else is replaced.
remembered_port() {
  local name=$1 preferred=$2 avoid=${3:-} file="$STATE_DIR/$1.port" p=""
  [[ -f $file ]] && p=$(tr -dc '0-9' <"$file")
  if [[ -n $p ]] && port_in_use "$p"; then
    warn "port $p remembered for $name is taken by another process; picking another one"
    p=""
  fi
  if [[ -z $p ]]; then
    p=$(pick_port "$preferred" "$avoid")
    printf '%s\n' "$p" >"$file"
  fi
  printf '%s\n' "$p"
}

# --------------------------------------------------------------------------
# PostgreSQL

# Run a command as the PostgreSQL owner: `postgres` when we are root, else us.
# From / so that an unreadable current directory does not upset pg_ctl.
as_pg() {
  if is_root; then
    (cd / && exec runuser -u postgres -- "$@")
  else
    (cd / && exec "$@")
  fi
}

# Sets PGDATA, PGRUN (socket dir), PGLOG and PGHOME_FALLBACK ("" unless the
# /var/lib/inventiv fallback is used). Creates nothing.
pg_layout() {
  PGHOME_FALLBACK=""
  if [[ -L $STATE_DIR/postgres ]]; then
    PGDATA=$(readlink -f -- "$STATE_DIR/postgres")
    PGHOME_FALLBACK=$(dirname -- "$PGDATA")
  elif [[ ! -e $STATE_DIR/postgres ]] && is_root && id postgres >/dev/null 2>&1 \
    && ! pg_can_traverse "$STATE_DIR"; then
    PGHOME_FALLBACK="/var/lib/inventiv/$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-16)"
    PGDATA="$PGHOME_FALLBACK/postgres"
  else
    PGDATA="$STATE_DIR/postgres"
  fi
  if [[ -n $PGHOME_FALLBACK ]]; then
    PGRUN="$PGHOME_FALLBACK/run"
    PGLOG="$PGHOME_FALLBACK/postgres.log"
  else
    PGRUN="$STATE_DIR/run/postgres"
    PGLOG="$STATE_DIR/logs/postgres.log"
  fi
}

# Can the postgres user reach DIR? (its nearest existing ancestor when DIR
# does not exist yet, since we would create the rest with mode 755).
pg_can_traverse() {
  local d=$1
  while [[ ! -e $d ]]; do d=$(dirname -- "$d"); done
  runuser -u postgres -- test -x "$d"
}

# Sets PGBIN for the cluster's version (installing PostgreSQL if needed).
pg_binaries() {
  local have=""
  [[ -f $PGDATA/PG_VERSION ]] && have=$(<"$PGDATA/PG_VERSION")
  PGBIN=$(pg_bindir "$have")
  if [[ -z $PGBIN ]]; then
    apt_install postgresql
    PGBIN=$(pg_bindir "$have")
    [[ -n $PGBIN ]] || die "PostgreSQL was installed but no /usr/lib/postgresql/*/bin/postgres was found"
  fi
  if [[ -n $have && $PGBIN != "/usr/lib/postgresql/$have/bin" ]]; then
    die "$PGDATA was created by PostgreSQL $have, which is not installed (found $PGBIN). Install postgresql-$have, or delete the data with: make clean-state"
  fi
  if is_root && ! id postgres >/dev/null 2>&1; then
    die "PostgreSQL refuses to run as root and there is no 'postgres' user; install Debian's postgresql package (it creates it) or run as a normal user"
  fi
}

pg_running() {
  [[ -f $PGDATA/PG_VERSION ]] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

# The port of the running cluster, from postmaster.pid (line 4).
pg_running_port() {
  as_pg sed -n 4p "$PGDATA/postmaster.pid" | tr -dc '0-9'
}

pg_mkdir_owned() {
  mkdir -p -- "$@"
  if is_root; then chown postgres:postgres -- "$@"; fi
}

pg_init() {
  [[ -f $PGDATA/PG_VERSION ]] && return 0
  if [[ -d $PGDATA && -n $(ls -A -- "$PGDATA") ]]; then
    die "$PGDATA exists, is not empty and holds no PostgreSQL cluster; move it away or run: make clean-state"
  fi
  log "creating a PostgreSQL cluster in $PGDATA"
  if [[ -n $PGHOME_FALLBACK ]]; then
    warn "the postgres user cannot traverse $STATE_DIR; keeping the data in $PGDATA (linked from $STATE_DIR/postgres)"
    mkdir -p -- "$PGHOME_FALLBACK"
    chmod 755 /var/lib/inventiv "$PGHOME_FALLBACK"
    printf '%s\n' "$STATE_DIR" >"$PGHOME_FALLBACK/state-dir"
  fi
  pg_mkdir_owned "$PGDATA"
  chmod 700 -- "$PGDATA"
  local out
  if ! out=$(as_pg "$PGBIN/initdb" -D "$PGDATA" -U "$PG_USER" --auth=trust \
    --encoding=UTF8 --locale=C 2>&1 </dev/null); then
    printf '%s\n' "$out" >&2
    die "initdb failed"
  fi
  # Trust, but only over the socket and 127.0.0.1 (no ::1, nothing remote).
  as_pg tee "$PGDATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by scripts/services.sh: a private development cluster.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
EOF
  printf "\n# Settings of scripts/services.sh, rewritten on each start.\ninclude_if_exists = 'inventiv.conf'\n" \
    | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
}

pg_write_conf() {
  local port=$1 sockdir=$PGRUN
  # A unix socket path must fit in 107 bytes ("/.s.PGSQL.NNNNN" included);
  # we always connect over TCP, so a too-deep state dir just gets no socket.
  if ((${#sockdir} + 16 > 103)); then
    warn "state dir path too long for a unix socket; PostgreSQL listens on TCP only"
    sockdir=""
  fi
  {
    printf '# Written by scripts/services.sh on each start; edits are lost.\n'
    printf "listen_addresses = '127.0.0.1'\n"
    printf 'port = %s\n' "$port"
    printf "unix_socket_directories = '%s'\n" "${sockdir//\'/\'\'}"
    printf 'max_connections = 200\n'
    if [[ ${INVENTIV_PG_FAST:-0} == 1 ]]; then
      printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n'
    fi
  } | as_pg tee "$PGDATA/inventiv.conf" >/dev/null
}

pg_psql() {
  local port=$1
  shift
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$PG_USER" "$@"
}

# Starts (or reuses) the cluster; sets PG_PORT and PG_STARTED (0/1).
pg_up() {
  PG_STARTED=0
  pg_layout
  pg_binaries
  pg_layout # again: installing PostgreSQL may just have created the postgres user
  pg_init
  if [[ -n $PGHOME_FALLBACK ]]; then ln -sfn -- "$PGDATA" "$STATE_DIR/postgres"; fi
  if pg_running; then
    PG_PORT=$(pg_running_port)
    [[ -n $PG_PORT ]] || die "PostgreSQL runs in $PGDATA but its port is unknown"
    log "PostgreSQL already running on 127.0.0.1:$PG_PORT ($PGDATA)"
  else
    pg_mkdir_owned "$PGRUN"
    mkdir -p -- "$(dirname -- "$PGLOG")"
    touch -- "$PGLOG"
    if is_root; then chown postgres:postgres -- "$PGLOG"; fi
    local attempt preferred=$PG_PREFERRED_PORT
    for ((attempt = 1; ; attempt++)); do
      PG_PORT=$(remembered_port postgres "$preferred")
      pg_write_conf "$PG_PORT"
      log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $PGLOG)"
      # fds 3 (our real stdout) and 8 (the lock) must not reach the daemon.
      if as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t 120 -s start \
        </dev/null >&2 3>&- 8>&-; then
        break
      fi
      # Another process took the port between the check and the start (a
      # test run beside this one): pick another.
      if ((attempt < 5)) && tail -n 5 -- "$PGLOG" | grep -q 'Address already in use'; then
        warn "port $PG_PORT was taken meanwhile; picking another one"
        rm -f -- "$STATE_DIR/postgres.port"
        preferred=$((PG_PORT + 1))
        continue
      fi
      tail -n 30 -- "$PGLOG" >&2 || true
      die "PostgreSQL did not start"
    done
    PG_STARTED=1
  fi
  local exists
  exists=$(pg_psql "$PG_PORT" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")
  if [[ $exists != 1 ]]; then
    log "creating database $PG_DATABASE"
    pg_psql "$PG_PORT" -d postgres -c "CREATE DATABASE $PG_DATABASE"
  fi
}

pg_down() {
  pg_layout
  [[ -f $PGDATA/PG_VERSION ]] || return 0
  PGBIN=$(pg_bindir "$(<"$PGDATA/PG_VERSION")")
  [[ -n $PGBIN ]] || return 0
  if pg_running; then
    log "stopping PostgreSQL ($PGDATA)"
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 -s stop >&2
  fi
}

# --------------------------------------------------------------------------
# Redis

REDIS_DIR="$STATE_DIR/redis"
REDIS_PIDFILE="$STATE_DIR/run/redis.pid"
REDIS_LOG="$STATE_DIR/logs/redis.log"

# Prints the pid of our redis-server if it runs.
redis_pid() {
  local pid
  [[ -f $REDIS_PIDFILE ]] || return 1
  pid=$(tr -dc '0-9' <"$REDIS_PIDFILE")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server* ]] || return 1
  printf '%s\n' "$pid"
}

# PING over bash's /dev/tcp (no redis-cli needed). True on +PONG.
redis_ping() {
  local port=$1 fd line=""
  { exec {fd}<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&"$fd"
  IFS= read -r -t 2 line <&"$fd" || true
  exec {fd}>&-
  [[ $line == "+PONG"* ]]
}

# redis_start PREFERRED: starts a Redis daemon on a free (remembered) port
# from PREFERRED up; sets REDIS_PORT.
redis_start() {
  REDIS_PORT=$(remembered_port redis "$1" "${PG_PORT:-}")
  rm -f -- "$REDIS_PIDFILE"
  # Where this start's lines begin in the (appended) log.
  REDIS_LOG_FROM=$(($(stat -c %s -- "$REDIS_LOG" 2>/dev/null || echo 0) + 1))
  log "starting Redis on 127.0.0.1:$REDIS_PORT (log: $REDIS_LOG)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --protected-mode yes --dir "$REDIS_DIR" --appendonly yes \
    --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" \
    </dev/null >&2 3>&- 8>&- || die "redis-server failed to start (log: $REDIS_LOG)"
}

# Starts (or reuses) Redis; sets REDIS_PORT and REDIS_STARTED (0/1).
redis_up() {
  REDIS_STARTED=0
  local pid
  if pid=$(redis_pid); then
    REDIS_PORT=$(tr -dc '0-9' <"$STATE_DIR/redis.port")
    log "Redis already running on 127.0.0.1:$REDIS_PORT (pid $pid)"
  else
    command -v redis-server >/dev/null || apt_install redis-server
    mkdir -p -- "$REDIS_DIR" "$(dirname -- "$REDIS_PIDFILE")" "$(dirname -- "$REDIS_LOG")"
    redis_start "$REDIS_PREFERRED_PORT"
    REDIS_STARTED=1
  fi
  local deadline=$((SECONDS + 60)) attempt=1
  until redis_ping "$REDIS_PORT"; do
    # Another process took the port between the check and the start (a
    # test run beside this one): Redis exits; pick another.
    if ((REDIS_STARTED && attempt < 5)) && ! redis_pid >/dev/null \
      && tail -c "+$REDIS_LOG_FROM" -- "$REDIS_LOG" | grep -q 'Address already in use'; then
      warn "port $REDIS_PORT was taken meanwhile; picking another one"
      rm -f -- "$STATE_DIR/redis.port"
      attempt=$((attempt + 1))
      redis_start $((REDIS_PORT + 1))
      continue
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 -- "$REDIS_LOG" >&2 || true
      die "Redis does not answer PING on 127.0.0.1:$REDIS_PORT"
    fi
    sleep 0.2
  done
}

redis_down() {
  local pid i
  pid=$(redis_pid) || return 0
  log "stopping Redis (pid $pid)"
  kill -TERM "$pid" # SIGTERM: Redis flushes the append-only file and exits
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || {
      rm -f -- "$REDIS_PIDFILE"
      return 0
    }
    sleep 0.1
  done
  warn "Redis (pid $pid) did not stop within 30 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f -- "$REDIS_PIDFILE"
}

# --------------------------------------------------------------------------

lock_state_dir() {
  mkdir -p -- "$STATE_DIR"
  exec 8>"$STATE_DIR/.services.lock"
  flock -w 300 8 || die "another scripts/services.sh holds $STATE_DIR/.services.lock"
}

cmd_up() {
  # From here on stdout is stderr; the exports go to fd 3 (the real stdout).
  exec 3>&1 1>&2
  if [[ -z ${DATABASE_URL:-} || -z ${REDIS_URL:-} ]]; then lock_state_dir; fi
  local started=()
  if [[ -n ${DATABASE_URL:-} ]]; then
    log "using the configured DATABASE_URL"
  else
    pg_up
    if ((PG_STARTED)); then started+=(postgres); fi
    DATABASE_URL="postgres://$PG_USER@127.0.0.1:$PG_PORT/$PG_DATABASE"
  fi
  if [[ -n ${REDIS_URL:-} ]]; then
    log "using the configured REDIS_URL"
  else
    redis_up
    if ((REDIS_STARTED)); then started+=(redis); fi
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
  fi
  {
    printf 'export DATABASE_URL=%s\n' "$(shell_quote "$DATABASE_URL")"
    printf 'export REDIS_URL=%s\n' "$(shell_quote "$REDIS_URL")"
    # What this call started (so that a caller stops only that on exit).
    printf 'export INVENTIV_STARTED_SERVICES=%s\n' "$(shell_quote "${started[*]:-}")"
  } >&3
}

cmd_down() {
  [[ -d $STATE_DIR ]] || return 0
  lock_state_dir
  local what=("$@")
  ((${#what[@]})) || what=(redis postgres)
  local s
  for s in "${what[@]}"; do
    case $s in
      postgres) pg_down ;;
      redis) redis_down ;;
      *) die "unknown service: $s (postgres, redis)" ;;
    esac
  done
}

cmd_status() {
  local pid
  pg_layout
  if [[ -f $PGDATA/PG_VERSION ]] && PGBIN=$(pg_bindir "$(<"$PGDATA/PG_VERSION")") \
    && [[ -n $PGBIN ]] && pg_running; then
    echo "postgres: running  postgres://$PG_USER@127.0.0.1:$(pg_running_port)/$PG_DATABASE  ($PGDATA)"
  else
    echo "postgres: stopped  ($PGDATA)"
  fi
  if pid=$(redis_pid); then
    echo "redis:    running  redis://127.0.0.1:$(tr -dc '0-9' <"$STATE_DIR/redis.port")/  (pid $pid)"
  else
    echo "redis:    stopped  ($REDIS_DIR)"
  fi
}

cmd_purge() {
  cmd_down
  # Processes of mock VMs left running (make run stops them on exit, a
  # killed one does not) would outlive their deleted directories.
  stop_mock_vms "$STATE_DIR/mock-vms" || true
  pg_layout
  if [[ -n $PGHOME_FALLBACK && -d $PGHOME_FALLBACK ]]; then
    log "removing $PGHOME_FALLBACK"
    rm -rf -- "$PGHOME_FALLBACK"
  fi
  if [[ -e $STATE_DIR ]]; then
    log "removing $STATE_DIR"
    rm -rf -- "$STATE_DIR"
  fi
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down "${@:2}" ;;
  status) cmd_status ;;
  purge) cmd_purge ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
