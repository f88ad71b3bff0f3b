-- The relay in front of each worker's engine (HAProxy on the node): the key
-- the proxy sends it, encrypted with the credentials key (AES-256-GCM bound
-- to the instance, like the other secrets at rest), and the SHA-256 of the
-- relay's TLS certificate, pinned at bootstrap. A worker without both is
-- never routed to.
ALTER TABLE instances
    ADD COLUMN relay_key_version INT,
    ADD COLUMN relay_key_nonce BYTEA,
    ADD COLUMN relay_key_ciphertext BYTEA,
    ADD COLUMN relay_cert_sha256 BYTEA,
    ADD CONSTRAINT instances_relay_key_whole CHECK (
        (relay_key_version IS NULL) = (relay_key_nonce IS NULL)
        AND (relay_key_nonce IS NULL) = (relay_key_ciphertext IS NULL)),
    ADD CONSTRAINT instances_relay_cert_sha256_len CHECK (
        relay_cert_sha256 IS NULL OR octet_length(relay_cert_sha256) = 32);
