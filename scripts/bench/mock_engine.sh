# shellcheck shell=bash
# `scripts/bench.sh mock_engine`: the mock engine alone on one core, wrk on
# the other: non-streaming chat completions per second, and streamed
# chunks per second. Sourced by scripts/bench.sh (helpers: bench/lib.sh).

MOCK_ENGINE_TARGET=20000
STREAM_TOKENS=256

bench_mock_engine() {
  log "building the mock engine (release)"
  cargo build --release --quiet -p inventiv-mock-engine
  start_server mock-engine "$TARGET_DIR/release/inventiv-mock-engine" \
    --port 0 --workers 1 --ttft-ms 0 --tokens-per-second 0 --load-delay-ms 0
  local base="http://$SERVER_ADDR"

  log "mock engine: non-streaming chat, $CONNECTIONS connections, $DURATION"
  lua_post "$WORK/chat.lua" '{"model":"mock/model","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Explain in a few words why inference benchmarks matter."}],"max_tokens":32}'
  load "$base/v1/chat/completions" "$WORK/chat.lua"
  report "mock engine: $RPS non-streaming req/s on 1 core (target ≥ $MOCK_ENGINE_TARGET): $(verdict "RPS >= MOCK_ENGINE_TARGET")"

  log "mock engine: streaming chat of $STREAM_TOKENS tokens, $CONNECTIONS connections, $DURATION"
  lua_post "$WORK/stream.lua" "{\"model\":\"mock/model\",\"messages\":[{\"role\":\"user\",\"content\":\"Stream me a long answer.\"}],\"max_tokens\":$STREAM_TOKENS,\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
  load "$base/v1/chat/completions" "$WORK/stream.lua"
  # Per stream: the role chunk, one chunk per token, the usage chunk, [DONE].
  local chunks=$((RPS * (STREAM_TOKENS + 3)))
  report "mock engine: $chunks streamed chunks/s on 1 core ($RPS streams/s of $STREAM_TOKENS tokens)"
}
