-- One row per answered /v1 request (unique request id), written in batches
-- off the request path.
CREATE TABLE usage_records (
    id                bigserial PRIMARY KEY,
    request_id        text NOT NULL UNIQUE,
    at                timestamptz NOT NULL,
    organization_id   uuid NOT NULL,
    api_key_id        uuid,
    user_id           uuid,
    model             text NOT NULL,
    endpoint          text NOT NULL,
    instance_id       uuid,
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    latency_ms        integer NOT NULL,
    ttft_ms           integer,
    status            integer NOT NULL,
    streamed          boolean NOT NULL DEFAULT false
);
CREATE INDEX usage_records_org_time ON usage_records (organization_id, at);
CREATE INDEX usage_records_instance_time ON usage_records (instance_id, at);
