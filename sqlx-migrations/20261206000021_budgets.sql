-- Monthly budgets of an organization (docs/architecture.md, "Budgets").
-- A budget meters one scope of the organization's consumption: all of it
-- (`organization`), one API key's, or one accepted share's (consumer side).
-- Limits: EUR (metered on usage_records.charged_eur, so only requests
-- through shares count: own models cost 0 per request, their GPUs are paid
-- by the hour), tokens (prompt + completion, any model), and GPU hours
-- (organization scope only, from cost_buckets). Each limit is optional;
-- at least one is set. Soft thresholds alert the owners once per month;
-- `hard_limit` refuses requests (and deployments, for GPU hours) that
-- would exceed a limit; `stop_running` terminates the organization's
-- instances once the GPU-hour limit is reached.
CREATE TABLE budgets (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    scope             text NOT NULL CHECK (scope IN ('organization', 'api_key', 'share')),
    api_key_id        uuid REFERENCES api_keys (id),
    share_id          uuid REFERENCES offering_shares (id),
    monthly_eur       numeric(14, 4) CHECK (monthly_eur >= 0),
    monthly_tokens    bigint CHECK (monthly_tokens >= 0),
    monthly_gpu_hours numeric(12, 2) CHECK (monthly_gpu_hours >= 0),
    thresholds        smallint[] NOT NULL DEFAULT '{50,80,100}',
    hard_limit        boolean NOT NULL DEFAULT true,
    stop_running      boolean NOT NULL DEFAULT false,
    created_by        uuid REFERENCES users (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((scope = 'api_key') = (api_key_id IS NOT NULL)),
    CHECK ((scope = 'share') = (share_id IS NOT NULL)),
    CHECK (scope = 'organization' OR (monthly_gpu_hours IS NULL AND NOT stop_running)),
    CHECK (monthly_eur IS NOT NULL OR monthly_tokens IS NOT NULL OR monthly_gpu_hours IS NOT NULL),
    CHECK (cardinality(thresholds) <= 10 AND 0 < ALL (thresholds) AND 100 >= ALL (thresholds))
);
-- One budget per scope and target.
CREATE UNIQUE INDEX budgets_target ON budgets (organization_id, scope, COALESCE(api_key_id, share_id, organization_id));

-- A threshold crossed in a month: recorded once (the unique key), shown in
-- the dashboard, mailed to the owners (mailed_at set when sent).
CREATE TABLE budget_alerts (
    id              bigserial PRIMARY KEY,
    budget_id       uuid NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    month           date NOT NULL,
    metric          text NOT NULL CHECK (metric IN ('eur', 'tokens', 'gpu_hours')),
    threshold       smallint NOT NULL,
    consumed        numeric NOT NULL,
    monthly_limit   numeric NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    mailed_at       timestamptz,
    UNIQUE (budget_id, month, metric, threshold)
);
CREATE INDEX budget_alerts_org ON budget_alerts (organization_id, created_at DESC);
CREATE INDEX budget_alerts_unmailed ON budget_alerts (id) WHERE mailed_at IS NULL;
