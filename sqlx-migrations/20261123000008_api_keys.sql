-- API keys of organizations: `inv_<public id>_<secret>`; only the SHA-256 of
-- the whole key is stored, looked up by its public id. Keys take part in
-- double activation: usable only when technically (admin) and economically
-- (manager) active.
CREATE TABLE api_keys (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    created_by       uuid NOT NULL REFERENCES users (id),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    public_id        text NOT NULL UNIQUE,
    secret_hash      bytea NOT NULL,
    last_four        text NOT NULL,
    models           text[],
    rpm_limit        integer CHECK (rpm_limit > 0),
    tpm_limit        integer CHECK (tpm_limit > 0),
    technical_active boolean NOT NULL DEFAULT false,
    economic_active  boolean NOT NULL DEFAULT false,
    expires_at       timestamptz,
    revoked_at       timestamptz,
    last_used_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_org ON api_keys (organization_id, created_at DESC);
