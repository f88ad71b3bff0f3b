-- The instance status columns get the CHECK constraints the other status
-- columns already have. The lists are the Rust enums' (InstanceStatus,
-- WorkerStatus); inventiv-api/tests/status_checks.rs compares them so they
-- cannot drift. A history row's from_status is also 'new' (the creation).

ALTER TABLE instances
    ADD CONSTRAINT instances_status_check CHECK (status IN (
        'provisioning', 'booting', 'installing', 'starting', 'ready', 'draining', 'terminating',
        'terminated', 'provisioning_failed', 'startup_failed', 'worker_dead', 'archived')),
    ADD CONSTRAINT instances_worker_status_check CHECK (worker_status IN ('starting', 'ready', 'draining', 'error'));

ALTER TABLE instance_state_history
    ADD CONSTRAINT instance_state_history_from_status_check CHECK (from_status IN (
        'new', 'provisioning', 'booting', 'installing', 'starting', 'ready', 'draining', 'terminating',
        'terminated', 'provisioning_failed', 'startup_failed', 'worker_dead', 'archived')),
    ADD CONSTRAINT instance_state_history_to_status_check CHECK (to_status IN (
        'provisioning', 'booting', 'installing', 'starting', 'ready', 'draining', 'terminating',
        'terminated', 'provisioning_failed', 'startup_failed', 'worker_dead', 'archived'));
