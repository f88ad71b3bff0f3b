-- Reconciling the proxy's metering with the engines' own token counters.
--
-- instance_token_counters: the engines' cumulative counters
-- (vllm:prompt_tokens_total, vllm:generation_tokens_total summed over the
-- node's engines) as the worker agent reported them in its heartbeats,
-- stamped on arrival. `series` names one run of the counters (the agent's
-- boot id and its engines' restart count): a new series starts from zero.
-- Tenant-reported, so a detection signal only, never a billing input; kept
-- for a bounded window (pruned with the other samples).
CREATE TABLE instance_token_counters (
    instance_id      uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    organization_id  uuid NOT NULL,
    sampled_at       timestamptz NOT NULL,
    series           text NOT NULL CHECK (length(series) BETWEEN 1 AND 100),
    prompt_total     bigint NOT NULL CHECK (prompt_total >= 0),
    generation_total bigint NOT NULL CHECK (generation_total >= 0)
);
CREATE INDEX instance_token_counters_instance_time ON instance_token_counters (instance_id, sampled_at);
CREATE INDEX instance_token_counters_time ON instance_token_counters (sampled_at);

-- The latest reconciliation per instance: what the engines counted and
-- what the proxy metered over the same spans of the window, the drift and
-- whether it is alerting. `alerts` counts the transitions into `alert`.
CREATE TABLE instance_usage_reconciliations (
    instance_id       uuid PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
    organization_id   uuid NOT NULL,
    checked_at        timestamptz NOT NULL,
    window_start      timestamptz NOT NULL,
    window_end        timestamptz NOT NULL,
    covered_seconds   double precision NOT NULL CHECK (covered_seconds >= 0),
    engine_prompt     bigint NOT NULL CHECK (engine_prompt >= 0),
    engine_generation bigint NOT NULL CHECK (engine_generation >= 0),
    proxy_prompt      bigint NOT NULL CHECK (proxy_prompt >= 0),
    proxy_completion  bigint NOT NULL CHECK (proxy_completion >= 0),
    drift_ratio       double precision NOT NULL CHECK (drift_ratio >= 0),
    status            text NOT NULL CHECK (status IN ('ok', 'alert', 'insufficient_data')),
    alerts            bigint NOT NULL DEFAULT 0 CHECK (alerts >= 0)
);
