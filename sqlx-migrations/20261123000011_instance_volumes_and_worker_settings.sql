-- The cloud volumes of each instance, discovered from its server after
-- creation: termination deletes those marked delete_on_terminate, and
-- reconciliation compares them with what the provider reports.
CREATE TABLE instance_volumes (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    instance_id         uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    organization_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider_code       text NOT NULL REFERENCES providers (code),
    zone                text NOT NULL,
    provider_volume_id  text NOT NULL,
    volume_type         text NOT NULL DEFAULT 'block' CHECK (volume_type IN ('block', 'local')),
    size_gb             integer NOT NULL CHECK (size_gb > 0),
    is_boot             boolean NOT NULL,
    delete_on_terminate boolean NOT NULL DEFAULT true,
    -- attached: in use; deleted: removed by us; missing: vanished at the provider.
    status              text NOT NULL DEFAULT 'attached' CHECK (status IN ('attached', 'deleted', 'missing')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    UNIQUE (provider_code, zone, provider_volume_id)
);
CREATE INDEX instance_volumes_instance ON instance_volumes (instance_id);

-- How an organization's nodes on a provider run the worker (validated by
-- inventiv-common's WorkerSettings; a missing row means the defaults).
CREATE TABLE worker_settings (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider_code   text NOT NULL REFERENCES providers (code),
    settings        jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, provider_code)
);
