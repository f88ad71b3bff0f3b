-- Services: a model served by 0..16 replicas (instances) placed on an
-- ordered list of placements, with a scaling policy and an optional budget
-- cap. The API writes the policy and desired_replicas (create = min, pause
-- = 0, resume = min, PATCH clamps it into [min, max]); the autoscaler
-- moves desired_replicas within [min, max] and converges the replicas to
-- it. Bounds mirror the API's (inventiv_common::service).
--
-- A service's state: active (replicas follow desired_replicas), paused
-- (desired 0, replicas terminated), deleting (replicas terminating),
-- deleted (final: no replica left; set by whoever sees the last one end).

CREATE TABLE services (
    id                     uuid PRIMARY KEY,
    organization_id        uuid NOT NULL REFERENCES organizations (id),
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- The Hugging Face id served, as instances.model_id, and the catalog
    -- row (null only for a service backfilled from an instance without one).
    model_id               text NOT NULL,
    model_catalog_id       uuid REFERENCES models (id),
    mode                   text NOT NULL DEFAULT 'mono' CHECK (mode IN ('mono', 'multi')),
    min_replicas           integer NOT NULL CHECK (min_replicas BETWEEN 0 AND 16),
    max_replicas           integer NOT NULL CHECK (max_replicas BETWEEN 1 AND 16),
    desired_replicas       integer NOT NULL CHECK (desired_replicas BETWEEN 0 AND 16),
    -- Scale up past this many outstanding requests per replica (null: not
    -- a signal), and/or past this TTFT p95.
    target_outstanding     double precision CHECK (target_outstanding > 0 AND target_outstanding <= 1000),
    target_ttft_p95_ms     integer CHECK (target_ttft_p95_ms BETWEEN 1 AND 600000),
    -- Idle this long (no request) → scale to min (zero when min is 0).
    idle_window_s          integer NOT NULL DEFAULT 900 CHECK (idle_window_s BETWEEN 1 AND 604800),
    -- No scale-down sooner than this after the last scaling.
    scale_down_cooldown_s  integer NOT NULL DEFAULT 300 CHECK (scale_down_cooldown_s BETWEEN 0 AND 86400),
    -- Budget caps of the service per calendar month (null: none): no
    -- scale-up past them. Exact decimals.
    gpu_hours_cap          numeric(14, 4) CHECK (gpu_hours_cap >= 0),
    eur_cap                numeric(14, 4) CHECK (eur_cap >= 0),
    state                  text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'deleting', 'deleted')),
    created_by             uuid REFERENCES users (id),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    last_scaled_at         timestamptz,
    CONSTRAINT services_min_le_max CHECK (min_replicas <= max_replicas),
    CONSTRAINT services_desired_le_max CHECK (desired_replicas <= max_replicas),
    -- An active service wants at least its floor; a paused or deleted one none.
    CONSTRAINT services_desired_by_state CHECK (
        (state = 'active' AND desired_replicas >= min_replicas) OR (state <> 'active' AND desired_replicas = 0))
);
CREATE INDEX services_org ON services (organization_id, created_at DESC);
-- The autoscaler's scan: the services it acts on.
CREATE INDEX services_live ON services (state) WHERE state IN ('active', 'deleting');

-- Where replicas go, in order of preference (position 0 first). Codes as
-- instances store them, with the catalog rows they name.
CREATE TABLE service_placements (
    service_id       uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    position         smallint NOT NULL CHECK (position BETWEEN 0 AND 7),
    provider         text NOT NULL,
    zone             text NOT NULL,
    instance_type    text NOT NULL,
    zone_id          uuid REFERENCES zones (id),
    instance_type_id uuid REFERENCES instance_types (id),
    PRIMARY KEY (service_id, position)
);
CREATE INDEX service_placements_zone ON service_placements (zone_id);
CREATE INDEX service_placements_type ON service_placements (instance_type_id);

-- A service's replicas are its instances.
ALTER TABLE instances ADD COLUMN service_id uuid REFERENCES services (id);
CREATE INDEX instances_service ON instances (service_id) WHERE service_id IS NOT NULL;

-- The service's timeline: what happened to it and why.
CREATE TABLE service_events (
    id              bigserial PRIMARY KEY,
    service_id      uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL CHECK (kind IN (
        'created', 'updated', 'paused', 'resumed', 'deleting', 'deleted',
        'scaled', 'replica_created', 'replica_terminated', 'placement_failed', 'budget_capped')),
    from_replicas   integer,
    to_replicas     integer,
    reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000)
);
CREATE INDEX service_events_service ON service_events (service_id, id DESC);

-- Backfill: every instance still serving (or able to again) becomes a
-- service of exactly one replica, as a deployment now is. Terminal ones
-- (terminating, terminated, archived, provisioning_failed) keep no service.
CREATE TEMPORARY TABLE service_backfill ON COMMIT DROP AS
SELECT i.id AS instance_id, gen_random_uuid() AS service_id
  FROM instances i
 WHERE i.status NOT IN ('terminating', 'terminated', 'archived', 'provisioning_failed');

INSERT INTO services (id, organization_id, name, model_id, model_catalog_id, mode,
                      min_replicas, max_replicas, desired_replicas, state, created_by, created_at, updated_at)
SELECT b.service_id, i.organization_id, i.name, i.model_id, i.model_catalog_id, i.mode,
       1, 1, 1, 'active', i.created_by, i.created_at, now()
  FROM service_backfill b JOIN instances i ON i.id = b.instance_id;

INSERT INTO service_placements (service_id, position, provider, zone, instance_type, zone_id, instance_type_id)
SELECT b.service_id, 0, i.provider, i.zone, i.instance_type,
       COALESCE(i.zone_id, (SELECT z.id FROM zones z WHERE z.provider_code = i.provider AND z.code = i.zone)),
       COALESCE(i.instance_type_id,
                (SELECT t.id FROM instance_types t WHERE t.provider_code = i.provider AND t.code = i.instance_type))
  FROM service_backfill b JOIN instances i ON i.id = b.instance_id;

UPDATE instances i SET service_id = b.service_id FROM service_backfill b WHERE i.id = b.instance_id;

INSERT INTO service_events (service_id, organization_id, kind, from_replicas, to_replicas, reason)
SELECT b.service_id, i.organization_id, 'created', 0, 1,
       'made from the existing instance ' || i.id || ' (a deployment is a service of one replica)'
  FROM service_backfill b JOIN instances i ON i.id = b.instance_id;
