#!/usr/bin/env bash
# The query metadata of sqlx's checked queries (`query!`, `query_as!`,
# `query_scalar!`), committed in .sqlx/ so that a build needs no database
# (.cargo/config.toml sets SQLX_OFFLINE=true for every build).
#
#   scripts/sqlx-prepare.sh          rewrite .sqlx/ after changing a query or a migration
#   scripts/sqlx-prepare.sh --check  fail when a query does not fit the migrated
#                                    schema or .sqlx/ is not what the queries need
#
# Both build every crate against a scratch database (`inventiv_test_sqlx_<pid>`,
# created from sqlx-migrations/ and dropped at the end) on DATABASE_URL's server, or on the
# private test PostgreSQL when DATABASE_URL is not set.
set -euo pipefail

LOG_TAG="sqlx"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

CHECK=0
case "${1:-}" in
  "") ;;
  --check) CHECK=1 ;;
  *) die "usage: scripts/sqlx-prepare.sh [--check]" ;;
esac

if [[ -z ${DATABASE_URL:-} ]]; then
  eval "$(INVENTIV_STATE_DIR="$(abs_path "${INVENTIV_TEST_STATE_DIR:-.local/test}")" INVENTIV_PG_FAST=1 scripts/services.sh up)"
fi
psql=$(find_psql)
# The server's maintenance database, and the scratch one beside it.
base=${DATABASE_URL%%\?*}
query=""
[[ $DATABASE_URL == *\?* ]] && query="?${DATABASE_URL#*\?}"
admin="${base%/*}/postgres$query"
name=inventiv_test_sqlx_$$
scratch="${base%/*}/$name$query"

out=$(mktemp -d)
mkdir -p "$out/new"
trap '"$psql" -X -q -d "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)"; rm -rf "$out"' EXIT
log "creating the scratch database $name from sqlx-migrations/"
"$psql" -X -q -v ON_ERROR_STOP=1 -d "$admin" -c "CREATE DATABASE $name"
for migration in sqlx-migrations/*.sql; do
  "$psql" -X -q -v ON_ERROR_STOP=1 -1 -d "$scratch" -f "$migration" >/dev/null
done

# The macros run again only in crates that are compiled again.
touch inventiv-*/src/lib.rs inventiv-*/src/main.rs 2>/dev/null || true
log "compiling every crate against the migrated schema"
# `build`, not `check`: the artifacts are the ones `cargo test` then reuses.
SQLX_OFFLINE=false SQLX_OFFLINE_DIR=$out/new DATABASE_URL=$scratch \
  cargo build --workspace --all-targets --quiet

if ((CHECK)); then
  mkdir -p "$out/committed"
  cp .sqlx/query-*.json "$out/committed/" 2>/dev/null || true
  if ! diff -r -q "$out/new" "$out/committed" >&2; then
    die ".sqlx/ is stale: run scripts/sqlx-prepare.sh and commit .sqlx/"
  fi
  log "every query fits the schema; .sqlx/ is current ($(find "$out/new" -name 'query-*.json' | wc -l) queries)"
else
  rm -f .sqlx/query-*.json
  cp "$out"/new/query-*.json .sqlx/ 2>/dev/null || true
  log ".sqlx/ rewritten: $(find .sqlx -name 'query-*.json' | wc -l) queries"
fi
