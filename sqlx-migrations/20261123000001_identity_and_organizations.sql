-- Identity, organizations, memberships, sessions, invitations, password
-- resets and the append-only audit log.

CREATE TABLE users (
    id                uuid PRIMARY KEY,
    email             text NOT NULL CHECK (email = lower(email) AND length(email) <= 254),
    display_name      text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    password_hash     text NOT NULL,
    is_platform_admin boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE organizations (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    slug          text NOT NULL UNIQUE,
    kind          text NOT NULL CHECK (kind IN ('personal', 'team')),
    sidebar_color text CHECK (sidebar_color ~ '^#[0-9a-f]{6}$'),
    created_by    uuid NOT NULL REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- One personal organization per user.
CREATE UNIQUE INDEX organizations_one_personal ON organizations (created_by) WHERE kind = 'personal';

CREATE TABLE organization_memberships (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text NOT NULL DEFAULT 'user' CHECK (role IN ('owner', 'admin', 'manager', 'user')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_memberships_user ON organization_memberships (user_id);

CREATE TABLE user_sessions (
    id                      uuid PRIMARY KEY,
    user_id                 uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id         uuid NOT NULL REFERENCES organizations (id),
    refresh_token_hash      bytea NOT NULL UNIQUE,
    ip                      text,
    user_agent              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    last_seen_at            timestamptz NOT NULL DEFAULT now(),
    expires_at              timestamptz NOT NULL,
    revoked_at              timestamptz,
    revoked_reason          text
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);
CREATE INDEX user_sessions_org ON user_sessions (organization_id);

CREATE TABLE organization_invitations (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           text NOT NULL CHECK (email = lower(email)),
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'manager', 'user')),
    token_hash      bytea NOT NULL UNIQUE,
    invited_by      uuid NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    accepted_at     timestamptz,
    accepted_by     uuid REFERENCES users (id),
    revoked_at      timestamptz
);
CREATE INDEX organization_invitations_org ON organization_invitations (organization_id, created_at DESC);

CREATE TABLE password_reset_tokens (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- The audit log outlives what it talks about: no foreign keys, and no
-- UPDATE, DELETE or TRUNCATE for anyone, superusers included.
CREATE TABLE audit_logs (
    id              bigserial PRIMARY KEY,
    organization_id uuid NOT NULL,
    actor_user_id   uuid,
    action          text NOT NULL,
    target_type     text,
    target_id       text,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_org_time ON audit_logs (organization_id, id DESC);

CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_logs_no_update_delete BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs FROM PUBLIC;
