-- Instances (one GPU VM serving one model) with the latest state reported by
-- their worker agent, and the worker's GPU and system samples over time.
-- The instance lifecycle (catalog, state machine, jobs) builds on this table.

CREATE TABLE instances (
    id                      uuid PRIMARY KEY,
    organization_id         uuid NOT NULL REFERENCES organizations (id),
    created_by              uuid REFERENCES users (id),
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    provider                text NOT NULL,
    zone                    text NOT NULL,
    instance_type           text NOT NULL,
    model_id                text NOT NULL,
    mode                    text NOT NULL DEFAULT 'mono' CHECK (mode IN ('mono', 'multi')),
    status                  text NOT NULL DEFAULT 'provisioning',
    progress                smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    error_code              text,
    error_message           text,
    ip_address              text,
    -- SHA-256 of the per-instance worker token; the token itself only
    -- travels in the bootstrap.
    worker_token_hash       bytea UNIQUE,
    worker_status           text,
    worker_boot_id          text,
    worker_agent_version    text,
    worker_bundle_sha256    text,
    worker_mode             text,
    worker_agent_port       integer,
    worker_engine_port      integer,
    worker_engine_ready     boolean,
    worker_requests_running integer,
    worker_requests_waiting integer,
    worker_engine_restarts  integer,
    worker_gpus             jsonb,
    worker_system           jsonb,
    worker_registered_at    timestamptz,
    last_heartbeat_at       timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_org ON instances (organization_id, created_at DESC);
CREATE INDEX instances_status ON instances (status);

CREATE TABLE gpu_samples (
    instance_id       uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    organization_id   uuid NOT NULL,
    sampled_at        timestamptz NOT NULL,
    gpu_index         smallint NOT NULL,
    utilization_pct   real NOT NULL,
    memory_used_mib   real NOT NULL,
    memory_total_mib  real NOT NULL,
    temperature_c     real,
    power_w           real
);
CREATE INDEX gpu_samples_instance_time ON gpu_samples (instance_id, sampled_at);
CREATE INDEX gpu_samples_time ON gpu_samples (sampled_at);

CREATE TABLE system_samples (
    instance_id        uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    organization_id    uuid NOT NULL,
    sampled_at         timestamptz NOT NULL,
    cpu_pct            real NOT NULL,
    load1              real NOT NULL,
    memory_used_mib    real NOT NULL,
    memory_total_mib   real NOT NULL,
    disk_used_gib      real,
    disk_total_gib     real,
    net_rx_bytes_per_s real,
    net_tx_bytes_per_s real
);
CREATE INDEX system_samples_instance_time ON system_samples (instance_id, sampled_at);
CREATE INDEX system_samples_time ON system_samples (sampled_at);
