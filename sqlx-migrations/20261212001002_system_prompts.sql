-- System prompts the proxy applies to chat completions (issue 19): one per
-- catalog model (platform admins), per organization and per API key
-- (owners and admins; a key's creator for their key). The most specific
-- applies: the key's, else the organization's, else the model's.
-- `if_absent` adds it as the first message when the request has no system
-- message; `always` puts it before the request's own messages. Each change
-- raises `version` and writes an audit entry with the text.
CREATE TABLE system_prompts (
    id              uuid PRIMARY KEY,
    scope           text NOT NULL CHECK (scope IN ('model', 'organization', 'api_key')),
    organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
    model_id        uuid REFERENCES models (id) ON DELETE CASCADE,
    api_key_id      uuid REFERENCES api_keys (id) ON DELETE CASCADE,
    content         text NOT NULL CHECK (length(content) BETWEEN 1 AND 4000),
    mode            text NOT NULL CHECK (mode IN ('if_absent', 'always')),
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    updated_by      uuid REFERENCES users (id),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT system_prompts_target CHECK (
        (scope = 'model' AND model_id IS NOT NULL AND organization_id IS NULL AND api_key_id IS NULL)
        OR (scope = 'organization' AND organization_id IS NOT NULL AND model_id IS NULL AND api_key_id IS NULL)
        OR (scope = 'api_key' AND api_key_id IS NOT NULL AND organization_id IS NOT NULL AND model_id IS NULL))
);
CREATE UNIQUE INDEX system_prompts_model ON system_prompts (model_id) WHERE scope = 'model';
CREATE UNIQUE INDEX system_prompts_organization ON system_prompts (organization_id) WHERE scope = 'organization';
CREATE UNIQUE INDEX system_prompts_api_key ON system_prompts (api_key_id) WHERE scope = 'api_key';
