-- Deployment quotas per organization, set by platform admins. NULL: the
-- platform default (INVENTIV_DEFAULT_MAX_INSTANCES / _GPUS) applies.
CREATE TABLE organization_quotas (
    organization_id uuid PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    max_instances integer CHECK (max_instances >= 0),
    max_gpus integer CHECK (max_gpus >= 0),
    updated_by uuid REFERENCES users(id) ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
