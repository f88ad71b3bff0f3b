#!/usr/bin/env bash
# `make migrate`: apply the SQL migrations (sqlx-migrations/) to DATABASE_URL,
# or to the private PostgreSQL of scripts/services.sh when DATABASE_URL is
# unset, with `inventiv-api migrate`. Loads .env like `make run`. The private
# services are left running (stop them with `make services-down`).
set -euo pipefail

LOG_TAG=migrate
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
load_dotenv

exports=$("$REPO_ROOT/scripts/services.sh" up)
eval "$exports"
unset INVENTIV_STARTED_SERVICES

cargo build --bin inventiv-api
TARGET_DIR=$(abs_path "${CARGO_TARGET_DIR:-target}")
log "applying migrations"
"$TARGET_DIR/debug/inventiv-api" migrate
