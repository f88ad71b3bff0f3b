-- Per-instance leases so several orchestrators never work on the same
-- instance at once, and the retry bookkeeping of the bootstrap.
ALTER TABLE instances
    ADD COLUMN lease_owner        text,
    ADD COLUMN lease_until        timestamptz,
    ADD COLUMN next_attempt_at    timestamptz,
    ADD COLUMN bootstrap_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN status_changed_at  timestamptz NOT NULL DEFAULT now();
CREATE INDEX instances_active ON instances (status) WHERE status NOT IN ('terminated', 'archived');
