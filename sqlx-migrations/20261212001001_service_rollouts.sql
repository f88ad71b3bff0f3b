-- Rolling replacement (issue 17): a service's revision counts its
-- rollouts; each replica records the revision it was made at. A replica
-- of an older revision is outdated: the replica convergence replaces the
-- outdated ones one at a time, a new replica ready before an old one is
-- drained (inventiv-api/src/rollout.rs).
ALTER TABLE services ADD COLUMN revision integer NOT NULL DEFAULT 1 CHECK (revision >= 1);

-- The revision of its service a replica was made at (every replica made
-- so far: 1; meaningless for an instance outside a service).
ALTER TABLE instances ADD COLUMN service_revision integer NOT NULL DEFAULT 1 CHECK (service_revision >= 1);

ALTER TABLE service_events DROP CONSTRAINT service_events_kind_check;
ALTER TABLE service_events ADD CONSTRAINT service_events_kind_check CHECK (kind IN (
    'created', 'updated', 'paused', 'resumed', 'deleting', 'deleted',
    'scaled', 'replica_created', 'replica_terminated', 'placement_failed', 'budget_capped',
    'rollout_started', 'rollout_finished'));
