-- Fair admission on a shared deployment (docs/architecture.md, "Fair
-- admission"): a share's weight against the provider's own traffic, which
-- weighs 100, and each API key's priority band.
ALTER TABLE offering_shares
    ADD COLUMN weight integer NOT NULL DEFAULT 100 CHECK (weight BETWEEN 1 AND 1000);

ALTER TABLE api_keys
    ADD COLUMN priority text NOT NULL DEFAULT 'interactive' CHECK (priority IN ('interactive', 'batch'));
