-- An organization's own GPU servers, reached over SSH (issue 18, first
-- slice: registration, verification, drain, removal; placement comes later).
--
-- The key the control plane logs in with: one Ed25519 pair per
-- organization, made on first need; the private half only encrypted with
-- the deployment's keyring (bound to the organization), the public half in
-- the clear for the admin to put in authorized_keys.
CREATE TABLE organization_ssh_keys (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    public_key      text NOT NULL CHECK (public_key LIKE 'ssh-ed25519 %'),
    key_version     integer NOT NULL,
    nonce           bytea NOT NULL,
    ciphertext      bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- A host: where it is, what it holds, where it stands. Bounds mirror the
-- API's (inventiv_common::host).
--   registered   declared, never reached
--   verified     reached with the organization's key, host key pinned
--   in_use       holds instances (set by placement, a later slice)
--   draining     nothing new goes there (maintenance)
--   unreachable  the last verification failed (or met another host key)
--   removed      final: kept for its history
CREATE TABLE hosts (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    address           text NOT NULL CHECK (length(address) BETWEEN 1 AND 253),
    ssh_port          integer NOT NULL CHECK (ssh_port BETWEEN 1 AND 65535),
    ssh_user          text NOT NULL CHECK (length(ssh_user) BETWEEN 1 AND 32),
    label             text NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    -- A free-form pool, the zone of the `ssh` provider (e.g. paris-rack-2).
    pool              text NOT NULL CHECK (length(pool) BETWEEN 1 AND 63),
    gpu_count         integer NOT NULL CHECK (gpu_count BETWEEN 0 AND 16),
    gpu_model         text CHECK (length(gpu_model) BETWEEN 1 AND 100),
    gpu_vram_mib      integer CHECK (gpu_vram_mib BETWEEN 1024 AND 1048576),
    -- Whether the GPU columns come from nvidia-smi on the host (else: declared).
    gpus_detected     boolean NOT NULL DEFAULT false,
    -- EUR per hour for FinOps (amortization, power); null: no cost.
    hourly_cost_eur   numeric(12, 4) CHECK (hourly_cost_eur >= 0),
    status            text NOT NULL DEFAULT 'registered' CHECK (status IN (
        'registered', 'verified', 'in_use', 'draining', 'unreachable', 'removed')),
    -- The host key line(s) recorded at the first verification (known_hosts
    -- format, under the alias inventiv-<host id>); every later connection
    -- must present the same key.
    ssh_known_hosts   text,
    last_checked_at   timestamptz,
    last_check_ok     boolean,
    last_check_message text,
    created_by        uuid REFERENCES users (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    removed_at        timestamptz,
    CONSTRAINT hosts_gpus_described CHECK (
        gpu_count = 0 OR (gpu_model IS NOT NULL AND gpu_vram_mib IS NOT NULL)),
    CONSTRAINT hosts_removed_at CHECK ((status = 'removed') = (removed_at IS NOT NULL))
);
CREATE INDEX hosts_org ON hosts (organization_id, created_at DESC, id);
-- One live registration per endpoint in an organization.
CREATE UNIQUE INDEX hosts_endpoint ON hosts (organization_id, lower(address), ssh_port)
    WHERE status <> 'removed';

-- A host's timeline: every status change (and every refused host key),
-- why, and who did it (null: the control plane itself).
CREATE TABLE host_state_history (
    id              bigserial PRIMARY KEY,
    host_id         uuid NOT NULL REFERENCES hosts (id),
    organization_id uuid NOT NULL,
    from_status     text CHECK (from_status IN (
        'registered', 'verified', 'in_use', 'draining', 'unreachable', 'removed')),
    to_status       text NOT NULL CHECK (to_status IN (
        'registered', 'verified', 'in_use', 'draining', 'unreachable', 'removed')),
    reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    actor_user_id   uuid REFERENCES users (id),
    request_id      text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX host_state_history_host ON host_state_history (host_id, id DESC);
