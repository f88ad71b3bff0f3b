-- Every status change of an instance, and the outbox of commands for the
-- orchestrator (written in the same transaction as the change).

CREATE TABLE instance_state_history (
    id              bigserial PRIMARY KEY,
    instance_id     uuid NOT NULL REFERENCES instances (id),
    organization_id uuid NOT NULL,
    from_status     text NOT NULL,
    to_status       text NOT NULL,
    error_code      text,
    error_message   text,
    actor           text NOT NULL,
    request_id      text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_state_history_instance ON instance_state_history (instance_id, id);

CREATE TABLE command_outbox (
    id              bigserial PRIMARY KEY,
    organization_id uuid NOT NULL,
    instance_id     uuid NOT NULL REFERENCES instances (id),
    command         text NOT NULL CHECK (command IN ('provision', 'reinstall', 'terminate')),
    request_id      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX command_outbox_unpublished ON command_outbox (id) WHERE published_at IS NULL;

ALTER TABLE instances ADD COLUMN model_catalog_id uuid REFERENCES models (id),
                      ADD COLUMN instance_type_id uuid REFERENCES instance_types (id),
                      ADD COLUMN zone_id uuid REFERENCES zones (id),
                      ADD COLUMN provider_server_id text,
                      ADD COLUMN price_eur_per_hour numeric(12, 4),
                      ADD COLUMN started_at timestamptz,
                      ADD COLUMN terminated_at timestamptz;
