-- The `ssh` provider (issue 18, second slice): an organization's hosts
-- serve as a provider like the clouds. Its zones are the organization's
-- pools, its instance types the host shapes (GPU count x model x memory);
-- "create" seats an engine on free GPUs of a host, "delete" stops it,
-- removes its install and gives the GPUs back.
INSERT INTO providers (code, name) VALUES ('ssh', 'Own servers (SSH)');

-- The SSH user's home directory, read at each verification: installs go
-- under it (the user need not be root).
ALTER TABLE hosts ADD COLUMN home_dir text
    CHECK (length(home_dir) BETWEEN 2 AND 1024 AND home_dir LIKE '/%');

-- One engine seated on a host: its GPUs (nvidia-smi indices), its slot
-- (its worker ports are the settings' ports + 100 x slot) and where it is
-- installed. The row lives as long as the GPUs are taken: from the create
-- to the end of the cleanup. `releasing_since` is set when termination
-- gave the seat back; the cleanup (stop, remove the install) may wait for
-- an unreachable host to answer again, and the GPUs stay taken meanwhile.
CREATE TABLE host_allocations (
    instance_id     uuid PRIMARY KEY REFERENCES instances (id),
    host_id         uuid NOT NULL REFERENCES hosts (id),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    gpus            integer[] NOT NULL CHECK (cardinality(gpus) BETWEEN 1 AND 16),
    slot            integer NOT NULL CHECK (slot BETWEEN 0 AND 15),
    install_dir     text NOT NULL CHECK (install_dir LIKE '/%'),
    releasing_since timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (host_id, slot)
);
CREATE INDEX host_allocations_host ON host_allocations (host_id);
CREATE INDEX host_allocations_org ON host_allocations (organization_id);

-- Which catalog zone and instance type of the `ssh` provider each live host
-- of an organization offers: the catalog shows an organization only its
-- own pools and shapes, and a placement must name one of them.
CREATE VIEW host_shapes AS
SELECT h.organization_id, h.id AS host_id, z.id AS zone_id, t.id AS instance_type_id
  FROM hosts h
  JOIN zones z ON z.provider_code = 'ssh' AND z.code = h.pool
  JOIN instance_types t ON t.provider_code = 'ssh'
       AND t.gpu_count BETWEEN 1 AND h.gpu_count
       AND t.vram_per_gpu_gb = h.gpu_vram_mib / 1024
       AND t.allocation ->> 'gpu_model' = h.gpu_model
 WHERE h.status <> 'removed';
