-- The action log: every step taken on an instance, with its outcome,
-- duration and details (e.g. the tail of an SSH phase's output). Rows are
-- only appended; a step's own row may move once from in_progress to its
-- outcome, and nothing is ever deleted.

CREATE TABLE action_logs (
    id              bigserial PRIMARY KEY,
    organization_id uuid NOT NULL,
    instance_id     uuid NOT NULL REFERENCES instances (id),
    action_type     text NOT NULL,
    status          text NOT NULL CHECK (status IN ('in_progress', 'success', 'failed')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    duration_ms     integer,
    error_code      text,
    error_message   text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id      text
);
CREATE INDEX action_logs_instance ON action_logs (instance_id, id);

CREATE FUNCTION action_logs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'in_progress'
       AND NEW.id = OLD.id AND NEW.instance_id = OLD.instance_id
       AND NEW.organization_id = OLD.organization_id AND NEW.action_type = OLD.action_type
       AND NEW.started_at = OLD.started_at THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'action_logs is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER action_logs_append_only BEFORE UPDATE OR DELETE ON action_logs
    FOR EACH ROW EXECUTE FUNCTION action_logs_guard();
CREATE TRIGGER action_logs_no_truncate BEFORE TRUNCATE ON action_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();

ALTER TABLE instances ADD COLUMN ssh_known_hosts text;

-- Organizations with instances are kept (their cost and action history
-- refer to them): deletion marks them and removes memberships instead.
ALTER TABLE organizations ADD COLUMN deleted_at timestamptz;
