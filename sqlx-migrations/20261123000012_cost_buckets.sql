-- GPU-hour costs per instance per minute bucket, written by the cost job
-- (inventiv-api/src/finops/cost_job.rs). One row per instance and minute:
-- the unique key makes a re-run harmless; each instance's watermark says up
-- to where its buckets are complete, so a job that was down catches up
-- without a gap.
--
-- Rounding rule: a bucket's cost is price_eur_per_hour x seconds / 3600
-- (seconds the instance ran inside the minute, to the microsecond), rounded
-- half away from zero to 12 decimals; reported totals are sums of buckets
-- rounded half away from zero to 4 decimals (numeric, never floats).
CREATE TABLE cost_buckets (
    instance_id        uuid NOT NULL REFERENCES instances (id),
    minute             timestamptz NOT NULL,
    organization_id    uuid NOT NULL,
    provider           text NOT NULL,
    instance_type      text NOT NULL,
    model_id           text NOT NULL,
    seconds            numeric(9, 6) NOT NULL CHECK (seconds > 0 AND seconds <= 60),
    price_eur_per_hour numeric(12, 4) NOT NULL,
    cost_eur           numeric(24, 12) NOT NULL,
    PRIMARY KEY (instance_id, minute)
);
CREATE INDEX cost_buckets_org_minute ON cost_buckets (organization_id, minute);

-- Per instance: every bucket before `until` has been written.
CREATE TABLE cost_watermarks (
    instance_id uuid PRIMARY KEY REFERENCES instances (id),
    until       timestamptz NOT NULL
);
