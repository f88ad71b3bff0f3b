-- The global catalog (managed by platform admins): providers, zones,
-- instance types with prices and availability, models. Organizations
-- activate items for themselves: technically (admin), economically
-- (manager); an item is usable only when both are on.

CREATE TABLE providers (
    code       text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9-]{1,30}$'),
    name       text NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE zones (
    id            uuid PRIMARY KEY,
    provider_code text NOT NULL REFERENCES providers (code),
    code          text NOT NULL,
    region        text NOT NULL,
    name          text NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    UNIQUE (provider_code, code)
);

CREATE TABLE instance_types (
    id                 uuid PRIMARY KEY,
    provider_code      text NOT NULL REFERENCES providers (code),
    code               text NOT NULL,
    gpu_count          integer NOT NULL CHECK (gpu_count >= 0),
    vram_per_gpu_gb    integer NOT NULL CHECK (vram_per_gpu_gb >= 0),
    vcpu               integer NOT NULL CHECK (vcpu > 0),
    ram_gb             integer NOT NULL CHECK (ram_gb > 0),
    -- Exact decimals: money is never a float.
    price_eur_per_hour numeric(12, 4) NOT NULL CHECK (price_eur_per_hour >= 0),
    -- Provider-specific allocation parameters (image, engine image, ...).
    allocation         jsonb NOT NULL DEFAULT '{}'::jsonb,
    active             boolean NOT NULL DEFAULT true,
    -- Set when a platform admin edits the row: catalog sync leaves it alone.
    edited_by_admin    boolean NOT NULL DEFAULT false,
    UNIQUE (provider_code, code)
);

CREATE TABLE instance_type_zones (
    instance_type_id uuid NOT NULL REFERENCES instance_types (id) ON DELETE CASCADE,
    zone_id          uuid NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    available        boolean NOT NULL DEFAULT true,
    PRIMARY KEY (instance_type_id, zone_id)
);

CREATE TABLE models (
    id                         uuid PRIMARY KEY,
    hf_id                      text NOT NULL UNIQUE,
    display_name               text NOT NULL,
    required_vram_gb           integer NOT NULL CHECK (required_vram_gb > 0),
    context_length             integer NOT NULL CHECK (context_length > 0),
    recommended_data_volume_gb integer NOT NULL CHECK (recommended_data_volume_gb > 0),
    kind                       text NOT NULL DEFAULT 'chat' CHECK (kind IN ('chat', 'embedding')),
    active                     boolean NOT NULL DEFAULT true,
    metadata                   jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE organization_activations (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    item_kind       text NOT NULL CHECK (item_kind IN ('provider', 'zone', 'instance_type', 'model')),
    item_id         text NOT NULL,
    technical       boolean NOT NULL DEFAULT false,
    economic        boolean NOT NULL DEFAULT false,
    technical_by    uuid REFERENCES users (id),
    economic_by     uuid REFERENCES users (id),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, item_kind, item_id)
);

-- Seed: the mock provider and Scaleway, with public prices (EUR/hour).
INSERT INTO providers (code, name) VALUES ('mock', 'Mock (local processes)'), ('scaleway', 'Scaleway');

INSERT INTO zones (id, provider_code, code, region, name) VALUES
    ('8a1d0000-0000-4000-8000-000000000001', 'mock', 'mock-zone-1', 'mock', 'Mock zone 1'),
    ('8a1d0000-0000-4000-8000-000000000002', 'mock', 'mock-zone-2', 'mock', 'Mock zone 2'),
    ('8a1d0000-0000-4000-8000-000000000011', 'scaleway', 'fr-par-1', 'fr-par', 'Paris 1'),
    ('8a1d0000-0000-4000-8000-000000000012', 'scaleway', 'fr-par-2', 'fr-par', 'Paris 2'),
    ('8a1d0000-0000-4000-8000-000000000013', 'scaleway', 'nl-ams-1', 'nl-ams', 'Amsterdam 1'),
    ('8a1d0000-0000-4000-8000-000000000014', 'scaleway', 'pl-waw-2', 'pl-waw', 'Warsaw 2');

INSERT INTO instance_types (id, provider_code, code, gpu_count, vram_per_gpu_gb, vcpu, ram_gb, price_eur_per_hour, allocation) VALUES
    ('8a1e0000-0000-4000-8000-000000000001', 'mock', 'mock-1gpu-24g', 1, 24, 8, 48, 0.7500, '{}'),
    ('8a1e0000-0000-4000-8000-000000000002', 'mock', 'mock-4gpu-80g', 4, 80, 48, 480, 10.0000, '{}'),
    ('8a1e0000-0000-4000-8000-000000000011', 'scaleway', 'L4-1-24G', 1, 24, 8, 48, 0.7500, '{"image": "ubuntu_jammy_gpu_os_12"}'),
    ('8a1e0000-0000-4000-8000-000000000012', 'scaleway', 'L40S-1-48G', 1, 48, 8, 96, 1.4000, '{"image": "ubuntu_jammy_gpu_os_12"}'),
    ('8a1e0000-0000-4000-8000-000000000013', 'scaleway', 'H100-1-80G', 1, 80, 24, 240, 2.7300, '{"image": "ubuntu_jammy_gpu_os_12"}'),
    ('8a1e0000-0000-4000-8000-000000000014', 'scaleway', 'H100-2-80G', 2, 80, 48, 480, 5.4600, '{"image": "ubuntu_jammy_gpu_os_12"}'),
    ('8a1e0000-0000-4000-8000-000000000015', 'scaleway', 'RENDER-S', 1, 16, 10, 42, 1.2210, '{"image": "ubuntu_jammy_gpu_os_12"}');

-- Availability: mock types everywhere; Scaleway per its public zone list.
INSERT INTO instance_type_zones (instance_type_id, zone_id)
SELECT t.id, z.id FROM instance_types t JOIN zones z ON z.provider_code = t.provider_code
 WHERE t.provider_code = 'mock'
    OR (t.code IN ('L4-1-24G', 'L40S-1-48G') AND z.code IN ('fr-par-1', 'fr-par-2', 'nl-ams-1', 'pl-waw-2'))
    OR (t.code LIKE 'H100-%' AND z.code IN ('fr-par-2', 'pl-waw-2'))
    OR (t.code = 'RENDER-S' AND z.code IN ('fr-par-1', 'fr-par-2'));

INSERT INTO models (id, hf_id, display_name, required_vram_gb, context_length, recommended_data_volume_gb, kind) VALUES
    ('8a1f0000-0000-4000-8000-000000000001', 'Qwen/Qwen2.5-0.5B-Instruct', 'Qwen2.5 0.5B Instruct', 4, 32768, 50, 'chat'),
    ('8a1f0000-0000-4000-8000-000000000002', 'Qwen/Qwen2.5-7B-Instruct', 'Qwen2.5 7B Instruct', 20, 32768, 100, 'chat'),
    ('8a1f0000-0000-4000-8000-000000000003', 'Qwen/Qwen2.5-32B-Instruct', 'Qwen2.5 32B Instruct', 80, 32768, 200, 'chat'),
    ('8a1f0000-0000-4000-8000-000000000004', 'meta-llama/Llama-3.1-8B-Instruct', 'Llama 3.1 8B Instruct', 20, 131072, 100, 'chat'),
    ('8a1f0000-0000-4000-8000-000000000005', 'meta-llama/Llama-3.1-70B-Instruct', 'Llama 3.1 70B Instruct', 160, 131072, 400, 'chat'),
    ('8a1f0000-0000-4000-8000-000000000006', 'mistralai/Mistral-7B-Instruct-v0.3', 'Mistral 7B Instruct v0.3', 18, 32768, 100, 'chat'),
    ('8a1f0000-0000-4000-8000-000000000007', 'BAAI/bge-m3', 'BGE-M3 (embeddings)', 4, 8192, 50, 'embedding');
