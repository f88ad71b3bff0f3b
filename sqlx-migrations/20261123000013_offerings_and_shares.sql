-- Inter-organization model sharing: an organization publishes a deployed
-- model as an offering addressed `org_slug/model_code`, prices it with
-- versions that take effect at a given time, and shares it with consumer
-- organizations. Usage through a share carries the provider, the offering,
-- the price version and the charged amount, fixed when the row is written.

CREATE TABLE offerings (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    -- The model id the provider's instances serve (instances.model_id).
    model_code       text NOT NULL CHECK (model_code ~ '^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$'),
    visibility       text NOT NULL CHECK (visibility IN ('public', 'unlisted', 'private')),
    -- Double activation: admins publish technically, managers economically.
    technical_active boolean NOT NULL DEFAULT false,
    economic_active  boolean NOT NULL DEFAULT false,
    created_by       uuid NOT NULL REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, model_code)
);

CREATE TABLE offering_shares (
    id                       uuid PRIMARY KEY,
    offering_id              uuid NOT NULL REFERENCES offerings (id),
    consumer_organization_id uuid NOT NULL REFERENCES organizations (id),
    status                   text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'revoked')),
    -- Economic activation by the consumer's manager; calls need it.
    accepted_at              timestamptz,
    accepted_by              uuid REFERENCES users (id),
    created_by               uuid NOT NULL REFERENCES users (id),
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (offering_id, consumer_organization_id)
);
CREATE INDEX offering_shares_consumer ON offering_shares (consumer_organization_id);

-- Prices never change in place: a change is a new version from `effective_at`.
-- A version with a share applies to that share only, and wins over the
-- offering's own price.
CREATE TABLE offering_prices (
    id                 uuid PRIMARY KEY,
    offering_id        uuid NOT NULL REFERENCES offerings (id),
    share_id           uuid REFERENCES offering_shares (id),
    input_eur_per_1k   numeric(12, 6) NOT NULL CHECK (input_eur_per_1k >= 0),
    output_eur_per_1k  numeric(12, 6) NOT NULL CHECK (output_eur_per_1k >= 0),
    effective_at       timestamptz NOT NULL,
    created_by         uuid NOT NULL REFERENCES users (id),
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX offering_prices_lookup ON offering_prices (offering_id, share_id, effective_at DESC);

-- A consumer organization's discovery preferences: what its listing of
-- available offerings leaves out by default (its manager decides).
CREATE TABLE offering_preferences (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    hide_public     boolean NOT NULL DEFAULT false,
    hide_paid       boolean NOT NULL DEFAULT false,
    updated_by      uuid REFERENCES users (id),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Usage through a share. `organization_id` stays the caller (consumer).
-- charged_eur = (prompt x input + completion x output) / 1000, exact.
ALTER TABLE usage_records
    ADD COLUMN provider_organization_id uuid,
    ADD COLUMN offering_id uuid,
    ADD COLUMN share_id uuid,
    ADD COLUMN price_version_id uuid,
    ADD COLUMN charged_eur numeric(24, 9);
CREATE INDEX usage_records_provider_time ON usage_records (provider_organization_id, at)
    WHERE provider_organization_id IS NOT NULL;
