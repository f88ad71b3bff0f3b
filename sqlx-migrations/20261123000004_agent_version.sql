-- The agent bundle the orchestrator installed, against the one the agent
-- reports: a mismatch (a stale or hand-modified agent) shows on the instance.
ALTER TABLE instances
    ADD COLUMN expected_bundle_sha256 text,
    ADD COLUMN agent_version_mismatch boolean GENERATED ALWAYS AS (
        expected_bundle_sha256 IS NOT NULL AND worker_bundle_sha256 IS NOT NULL
        AND worker_bundle_sha256 <> expected_bundle_sha256
    ) STORED;
