-- Provider credentials per organization, encrypted with AES-256-GCM by the
-- application (key from INVENTIV_ENCRYPTION_KEY, never in the database).
-- The associated data binds each ciphertext to its organization and
-- provider; key_version says which key encrypted it (rotation).
CREATE TABLE provider_credentials (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider_code   text NOT NULL REFERENCES providers (code),
    key_version     integer NOT NULL CHECK (key_version BETWEEN 1 AND 32767),
    nonce           bytea NOT NULL CHECK (length(nonce) = 12),
    ciphertext      bytea NOT NULL,
    -- Not secret: what the dashboard shows (e.g. the access key's first
    -- characters and the project id).
    hint            text NOT NULL,
    verified_at     timestamptz,
    verified_ok     boolean,
    verify_message  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, provider_code)
);
