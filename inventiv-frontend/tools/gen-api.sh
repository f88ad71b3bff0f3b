#!/usr/bin/env bash
# Regenerates the API types (src/api/schema.d.ts) from a running API's
# /openapi.json, keeping a pretty-printed copy in openapi.json so builds
# need no API. API_URL defaults to `make run`'s http://127.0.0.1:8003.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
API_URL=${API_URL:-http://127.0.0.1:8003}
curl -fsS "$API_URL/openapi.json" \
  | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>process.stdout.write(JSON.stringify(JSON.parse(s),null,4)+"\n"))' \
  >openapi.json.tmp
mv openapi.json.tmp openapi.json
npx --no-install openapi-typescript openapi.json -o src/api/schema.d.ts
