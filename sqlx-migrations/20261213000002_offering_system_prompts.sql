-- A shared offering's system prompt (issue 19), set by its provider's owners
-- and admins: it applies to the consumers' calls of `provider_slug/model_code`
-- when neither their key nor their organization has one (the most specific
-- applies: key, organization, offering, model). `organization_id` is the
-- provider's, for its listing.
ALTER TABLE system_prompts ADD COLUMN offering_id uuid REFERENCES offerings (id) ON DELETE CASCADE;
ALTER TABLE system_prompts DROP CONSTRAINT system_prompts_scope_check;
ALTER TABLE system_prompts ADD CONSTRAINT system_prompts_scope_check
    CHECK (scope IN ('model', 'organization', 'api_key', 'offering'));
ALTER TABLE system_prompts DROP CONSTRAINT system_prompts_target;
ALTER TABLE system_prompts ADD CONSTRAINT system_prompts_target CHECK (
    (scope = 'model' AND model_id IS NOT NULL AND organization_id IS NULL AND api_key_id IS NULL AND offering_id IS NULL)
    OR (scope = 'organization' AND organization_id IS NOT NULL AND model_id IS NULL AND api_key_id IS NULL AND offering_id IS NULL)
    OR (scope = 'api_key' AND api_key_id IS NOT NULL AND organization_id IS NOT NULL AND model_id IS NULL AND offering_id IS NULL)
    OR (scope = 'offering' AND offering_id IS NOT NULL AND organization_id IS NOT NULL AND model_id IS NULL AND api_key_id IS NULL));
CREATE UNIQUE INDEX system_prompts_offering ON system_prompts (offering_id) WHERE scope = 'offering';
