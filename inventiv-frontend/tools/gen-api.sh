#!/usr/bin/env bash
# Regenerates the API types (src/api/schema.ts) from the API's OpenAPI
# document, keeping a pretty-printed copy in openapi.json so builds need no
# API. The document comes from `cargo run --example openapi` (no database, no
# running API). `--enum-values` exports each enum's values as an array
# (`instanceStatusValues`, ...), so the dashboard's status lists are the API's.
# Stale copies fail: inventiv-api's tests/it/openapi_document.rs compares
# openapi.json with the API's document, `npm run check:api` (run by build and
# typecheck) schema.ts with openapi.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run --quiet --package inventiv-api --example openapi \
  | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>process.stdout.write(JSON.stringify(JSON.parse(s),null,4)+"\n"))' \
  >openapi.json.tmp
mv openapi.json.tmp openapi.json
npm run --silent gen:types
