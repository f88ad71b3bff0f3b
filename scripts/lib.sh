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
