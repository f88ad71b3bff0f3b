-- Gated models: Hugging Face serves their weights only to accounts that
-- accepted the model's terms, so deploying one needs the organization's
-- Hugging Face token. The token is stored like provider credentials:
-- AES-256-GCM by the application (key from INVENTIV_ENCRYPTION_KEY), the
-- associated data binding each ciphertext to its organization, key_version
-- saying which key encrypted it (rotation).
CREATE TABLE huggingface_tokens (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    key_version     integer NOT NULL CHECK (key_version BETWEEN 1 AND 32767),
    nonce           bytea NOT NULL CHECK (length(nonce) = 12),
    ciphertext      bytea NOT NULL,
    -- Not secret: what the dashboard shows (`hf_…` and the last 4 characters).
    hint            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE models ADD COLUMN gated boolean NOT NULL DEFAULT false;

-- The seeded models whose Hugging Face repositories are gated.
UPDATE models SET gated = true
 WHERE hf_id LIKE 'meta-llama/%' OR hf_id LIKE 'google/gemma%' OR hf_id = 'mistralai/Mistral-7B-Instruct-v0.3';
