# shellcheck shell=bash
# Shared helpers for the developer scripts (services.sh, run.sh, test.sh,
# migrate.sh). Source it; it defines functions and REPO_ROOT, nothing else.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG="${LOG_TAG:-inventiv}"

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$LOG_TAG" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$LOG_TAG" "$*" >&2
  exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# Quote a value so that `eval` gives it back verbatim.
shell_quote() {
  local s=$1
  printf "'%s'" "${s//\'/\'\\\'\'}"
}

# Load $REPO_ROOT/.env (or the file given) with `set -a`. Variables already
# present in the process environment win over the file, as with dotenv and
# docker compose. INVENTIV_SKIP_DOTENV=1 disables it (test.sh sets it so that
# tests never pick up a developer's local settings).
load_dotenv() {
  local file=${1:-$REPO_ROOT/.env}
  [[ ${INVENTIV_SKIP_DOTENV:-0} == 1 ]] && return 0
  [[ -f $file ]] || return 0
  local name kv
  local -a keep=()
  while IFS= read -r name; do
    if [[ -n ${!name+x} ]]; then keep+=("$name=${!name}"); fi
  done < <(sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}\([A-Za-z_][A-Za-z0-9_]*\)=.*/\2/p' "$file")
  set -a
  # shellcheck disable=SC1090
  source "$file"
  set +a
  for kv in "${keep[@]+"${keep[@]}"}"; do export "${kv%%=*}=${kv#*=}"; done
}

# Absolute form of a (possibly relative, possibly not yet existing) path;
# relative paths are taken from the repository root.
abs_path() {
  local d=$1
  [[ $d == /* ]] || d="$REPO_ROOT/$d"
  realpath -m -- "$d"
}

APT_UPDATED=0
# Install Debian packages when root; otherwise print the command and fail.
apt_install() {
  if ! is_root; then
    die "missing $*; install it with: sudo apt-get update && sudo apt-get install -y --no-install-recommends $*"
  fi
  command -v apt-get >/dev/null || die "missing $* and no apt-get on this machine: install $* yourself"
  log "installing Debian package(s): $*"
  if [[ $APT_UPDATED == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 \
    || die "apt-get install $* failed"
}

# Highest-version PostgreSQL bin dir under /usr/lib/postgresql (or the one of
# the version given as $1 when present). Prints nothing if none.
pg_bindir() {
  local want=${1:-} d best="" bestv=-1 v
  if [[ -n $want && -x /usr/lib/postgresql/$want/bin/postgres ]]; then
    printf '%s\n' "/usr/lib/postgresql/$want/bin"
    return 0
  fi
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/postgres && -x $d/initdb && -x $d/pg_ctl ]] || continue
    v=${d#/usr/lib/postgresql/}
    v=${v%/bin}
    v=${v%%.*}
    [[ $v =~ ^[0-9]+$ ]] || continue
    if ((v > bestv)); then
      bestv=$v
      best=$d
    fi
  done
  [[ -n $best ]] && printf '%s\n' "$best"
  return 0
}

# Path of a psql client; installs postgresql-client when root and missing.
find_psql() {
  local d
  if command -v psql >/dev/null; then
    command -v psql
    return 0
  fi
  d=$(pg_bindir "")
  if [[ -n $d && -x $d/psql ]]; then
    printf '%s\n' "$d/psql"
    return 0
  fi
  apt_install postgresql-client
  command -v psql
}

# host:port to use for a client from an address a server binds to
# (0.0.0.0 -> 127.0.0.1, [::] -> [::1]).
client_addr() {
  local a=$1
  case $a in
    0.0.0.0:*) a="127.0.0.1:${a#0.0.0.0:}" ;;
    "[::]:"*) a="[::1]:${a#\[::\]:}" ;;
  esac
  printf '%s\n' "$a"
}

# A TCP port something listens on?
listening() {
  local p=$1 fd
  if command -v ss >/dev/null; then
    [[ -n $(ss -Hltn "sport = :$p" 2>/dev/null) ]]
  elif { exec {fd}<>"/dev/tcp/127.0.0.1/$p"; } 2>/dev/null; then
    exec {fd}>&-
    return 0
  else
    return 1
  fi
}

# A free port in 20000-29999 (below the usual ephemeral range), not in "$@".
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 10000))
    [[ " $* " == *" $p "* ]] && continue
    listening "$p" || {
      printf '%s\n' "$p"
      return 0
    }
  done
  die "no free port found in 20000-29999"
}

# --- mock VMs ----------------------------------------------------------------------
# The mock provider (inventiv-providers/src/mock) runs each VM as processes
# of this machine: a VM is a directory <state dir>/mock-vms/<id>/ and an
# sshd started from it; the worker agent and its engine are started over SSH
# under <vm dir>/node. They live in their own process groups and sessions,
# so a Ctrl-C of `make run` does not reach them.

# Pids (one a line) of the live processes of the mock VMs under DIR (the
# absolute path of a `mock-vms` directory). A process belongs to them when
#  - one of its command-line arguments mentions DIR/ (sshd -f <vm>/sshd_config,
#    the agent supervisor, the agent), or
#  - its environment carries INVENTIV_MOCK_VM=<id of a VM in DIR> (the VM's
#    sshd sets it in every session; the engine inherits it from the agent), or
#  - it descends from such a process (sshd's per-connection children).
# Never pid 1 or this shell. Pure bash: no helper process whose own command
# line would mention DIR.
mock_vm_pids() {
  local dir=${1%/} stat line pid ppid state arg d
  local -a args markers=() stack=()
  local -A hit=() children=()
  [[ $dir == /*/mock-vms && -d $dir ]] || return 0
  for d in "$dir"/*/; do
    [[ -d $d ]] || continue
    d=${d%/}
    markers+=("INVENTIV_MOCK_VM=${d##*/}")
  done
  for stat in /proc/[0-9]*/stat; do
    pid=${stat#/proc/}
    pid=${pid%/stat}
    [[ $pid == 1 || $pid == "$$" || $pid == "$BASHPID" ]] && continue
    read -r line 2>/dev/null <"$stat" || continue
    # Field 2 (comm) may hold spaces: cut at the last ')'.
    read -r state ppid _ <<<"${line##*) }"
    [[ $state == Z ]] && continue
    children[$ppid]+=" $pid"
    mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || continue
    for arg in "${args[@]}"; do
      if [[ $arg == *"$dir/"* ]]; then
        hit[$pid]=1
        break
      fi
    done
    [[ -n ${hit[$pid]:-} ]] && continue
    ((${#markers[@]})) || continue
    mapfile -d '' args 2>/dev/null <"/proc/$pid/environ" || continue
    for arg in "${args[@]}"; do
      [[ $arg == INVENTIV_MOCK_VM=* ]] || continue
      for d in "${markers[@]}"; do
        if [[ $arg == "$d" ]]; then
          hit[$pid]=1
          break 2
        fi
      done
    done
  done
  stack=("${!hit[@]}")
  while ((${#stack[@]})); do
    pid=${stack[-1]}
    unset 'stack[-1]'
    for d in ${children[$pid]:-}; do
      [[ $d == "$$" || $d == "$BASHPID" || -n ${hit[$d]:-} ]] && continue
      hit[$d]=1
      stack+=("$d")
    done
  done
  for pid in "${!hit[@]}"; do
    [[ -d /proc/$pid ]] && printf '%s\n' "$pid"
  done
  return 0
}

# Stops every process of the mock VMs under DIR (see mock_vm_pids): SIGTERM,
# up to 5 s, SIGKILL, repeated while some are found (they may fork while
# dying). The VM directories are left alone: the VMs are merely "powered
# off"; the orchestrator finds them, with their sshd down, on its next start.
stop_mock_vms() {
  local dir=$1 round i pids total=0
  for ((round = 0; round < 4; round++)); do
    pids=$(mock_vm_pids "$dir")
    [[ -n $pids ]] || break
    total=$((total + $(wc -l <<<"$pids")))
    # shellcheck disable=SC2086 # a list of pids
    kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      [[ -z $(mock_vm_pids "$dir") ]] && break
      sleep 0.1
    done
    pids=$(mock_vm_pids "$dir")
    # shellcheck disable=SC2086
    [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
  done
  pids=$(mock_vm_pids "$dir")
  if [[ -n $pids ]]; then
    warn "processes of mock VMs survive SIGKILL: $(tr '\n' ' ' <<<"$pids")"
    return 1
  fi
  ((total == 0)) || log "stopped $total process(es) of the mock VMs in $dir"
  return 0
}

# Pids (one a line) of live processes one of whose command-line arguments
# contains NEEDLE. Never this shell.
processes_mentioning() {
  local needle=$1 stat pid arg line state
  local -a args
  for stat in /proc/[0-9]*/stat; do
    pid=${stat#/proc/}
    pid=${pid%/stat}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    read -r line 2>/dev/null <"$stat" || continue
    read -r state _ <<<"${line##*) }"
    [[ $state == Z ]] && continue
    mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || continue
    for arg in "${args[@]}"; do
      if [[ $arg == *"$needle"* ]]; then
        printf '%s\n' "$pid"
        break
      fi
    done
  done
  return 0
}

# --- a newcomer's environment and a whole stack through scripts/run.sh ------
# For the suites that drive `make run` from outside (smoke, browser,
# schemathesis).

# Forgets the caller's configuration: no .env, no configured database,
# Redis, SMTP or production settings, no inherited make jobserver. Only
# INVENTIV_READY_TIMEOUT_SECS stays (slow machines).
newcomer_environment() {
  local v
  export INVENTIV_SKIP_DOTENV=1
  for v in $(compgen -v INVENTIV_) $(compgen -v SMTP_); do
    case $v in
      INVENTIV_SKIP_DOTENV | INVENTIV_READY_TIMEOUT_SECS) ;;
      *) unset "$v" ;;
    esac
  done
  unset DATABASE_URL REDIS_URL MAKEFLAGS MFLAGS MAKELEVEL
}

# python_venv DIR REQUIREMENTS: a venv in DIR with REQUIREMENTS installed,
# rebuilt when the requirements file changes.
python_venv() {
  local venv=$1 requirements=$2 want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [[ ! -x $venv/bin/python || $(cat "$venv/.requirements.sha256" 2>/dev/null) != "$want" ]]; then
    log "creating $venv from $requirements"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
    printf '%s\n' "$want" >"$venv/.requirements.sha256"
  fi
}

# stack_start STATE [NAME=VALUE...]: scripts/run.sh on the state dir STATE,
# in its own process group, its output in $STATE/run.out, with the given
# settings; sets STACK_PID and STACK_OUT.
stack_start() {
  local state=$1
  shift
  STACK_OUT="$state/run.out"
  (
    trap - INT QUIT
    exec env INVENTIV_STATE_DIR="$state" "$@" setsid "$REPO_ROOT/scripts/run.sh" </dev/null >"$STACK_OUT" 2>&1
  ) &
  STACK_PID=$!
}

# stack_alive: whether scripts/run.sh (started by stack_start) still runs.
stack_alive() { [[ -n ${STACK_PID:-} ]] && kill -0 "$STACK_PID" 2>/dev/null; }

# stack_wait_banner TIMEOUT_SECS: waits for run.sh's banner; sets
# ADMIN_EMAIL and ADMIN_PASSWORD from it.
stack_wait_banner() {
  local deadline=$((SECONDS + $1))
  until grep -q '^  Ctrl-C stops everything\.' "$STACK_OUT" 2>/dev/null; do
    stack_alive || die "scripts/run.sh exited before printing its banner"
    ((SECONDS < deadline)) || die "no banner from scripts/run.sh within $1s"
    sleep 0.25
  done
  ADMIN_EMAIL=$(sed -n 's/^  Admin e-mail \{2,\}\([^ ].*\)$/\1/p' "$STACK_OUT" | head -n 1)
  ADMIN_PASSWORD=$(sed -n 's/^  Admin password \{2,\}\([^ ].*\)$/\1/p' "$STACK_OUT" | head -n 1)
  [[ -n $ADMIN_EMAIL && -n $ADMIN_PASSWORD ]] || die "no admin credentials in the banner of scripts/run.sh"
}

# stack_stop STATE KEEP RC: SIGINT to run.sh's group (then TERM, then KILL),
# shows its output's tail when RC is not 0, stops what it could not, and
# purges the state dir (only stops the services when KEEP is 1).
stack_stop() {
  local state=$1 keep=$2 rc=$3 i
  if stack_alive; then
    log "stopping scripts/run.sh (process group $STACK_PID)"
    kill -INT -- "-$STACK_PID" 2>/dev/null
    for ((i = 0; i < 600; i++)); do
      stack_alive || break
      ((i == 300)) && kill -TERM -- "-$STACK_PID" 2>/dev/null
      ((i == 450)) && kill -KILL -- "-$STACK_PID" 2>/dev/null
      sleep 0.1
    done
    wait "$STACK_PID" 2>/dev/null
  fi
  if ((rc != 0)) && [[ -f ${STACK_OUT:-} ]]; then
    printf '\n--- last 60 lines of scripts/run.sh (%s) ---\n' "$STACK_OUT" >&2
    tail -n 60 "$STACK_OUT" >&2
    printf -- '--- end ---\n' >&2
  fi
  # Whatever run.sh could not stop (killed before its own cleanup).
  stop_mock_vms "$state/mock-vms"
  if [[ $keep == 1 ]]; then
    INVENTIV_STATE_DIR=$state "$REPO_ROOT/scripts/services.sh" down
    log "kept $state"
  else
    INVENTIV_STATE_DIR=$state "$REPO_ROOT/scripts/services.sh" purge 2>&1 | sed "s/^/[$LOG_TAG] /" >&2
    rm -rf -- "$state"
  fi
}
