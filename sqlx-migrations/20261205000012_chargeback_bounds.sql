-- Chargeback no longer trusts the provider alone.
--
-- Prices: a version raising what an accepted share pays applies only once
-- the consumer has had notice of it (it was created at least the notice
-- period before the request, INVENTIV_PRICE_NOTICE_DAYS) or the consumer
-- re-accepted after it was created (`prices_accepted_at`). Until then the
-- last price the consumer knew applies (none known: free). A lower price
-- applies at once. A consumer may also set a maximum price on its share:
-- the proxy refuses calls above it and no row is charged above it.
--
-- Usage: token counts are bounded by what is plausible for the request
-- (see inventiv-api/src/proxy/plausible.rs); an implausible report is
-- billed at the bound and recorded as a dispute both organizations see.

ALTER TABLE offering_shares
    ADD COLUMN prices_accepted_at    timestamptz,
    ADD COLUMN max_input_eur_per_1k  numeric(12, 6) CHECK (max_input_eur_per_1k >= 0),
    ADD COLUMN max_output_eur_per_1k numeric(12, 6) CHECK (max_output_eur_per_1k >= 0),
    ADD CONSTRAINT offering_shares_max_price_pair
        CHECK ((max_input_eur_per_1k IS NULL) = (max_output_eur_per_1k IS NULL));
UPDATE offering_shares SET prices_accepted_at = accepted_at;

-- The price a share pays at `p_at`: (version, input, output) per 1k tokens.
CREATE FUNCTION share_price(p_share uuid, p_at timestamptz, p_notice interval)
RETURNS TABLE (version_id uuid, input_eur_per_1k numeric, output_eur_per_1k numeric)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN x.raised THEN x.k_id ELSE x.c_id END,
           CASE WHEN x.raised THEN COALESCE(x.k_in, 0) ELSE x.c_in END,
           CASE WHEN x.raised THEN COALESCE(x.k_out, 0) ELSE x.c_out END
      FROM (SELECT c.id AS c_id, c.input_eur_per_1k AS c_in, c.output_eur_per_1k AS c_out,
                   k.id AS k_id, k.input_eur_per_1k AS k_in, k.output_eur_per_1k AS k_out,
                   c.input_eur_per_1k > COALESCE(k.input_eur_per_1k, 0)
                     OR c.output_eur_per_1k > COALESCE(k.output_eur_per_1k, 0) AS raised
              FROM offering_shares s
              -- The provider's price in force (the share's own wins).
              LEFT JOIN LATERAL (
                   SELECT v.id, v.input_eur_per_1k, v.output_eur_per_1k FROM offering_prices v
                    WHERE v.offering_id = s.offering_id AND (v.share_id = s.id OR v.share_id IS NULL)
                      AND v.effective_at <= p_at
                    ORDER BY v.share_id IS NULL, v.effective_at DESC LIMIT 1) c ON true
              -- The same among the versions the consumer knew of in time.
              LEFT JOIN LATERAL (
                   SELECT v.id, v.input_eur_per_1k, v.output_eur_per_1k FROM offering_prices v
                    WHERE v.offering_id = s.offering_id AND (v.share_id = s.id OR v.share_id IS NULL)
                      AND v.effective_at <= p_at
                      AND v.created_at <= GREATEST(p_at - p_notice, COALESCE(s.prices_accepted_at, s.accepted_at))
                    ORDER BY v.share_id IS NULL, v.effective_at DESC LIMIT 1) k ON true
             WHERE s.id = p_share) x
$$;

ALTER TABLE usage_records
    ADD CONSTRAINT usage_records_tokens_non_negative CHECK (prompt_tokens >= 0 AND completion_tokens >= 0),
    ADD CONSTRAINT usage_records_charge_non_negative CHECK (charged_eur >= 0);

-- A worker's report beyond the plausible bound; the usage row holds the
-- billed (bounded) counts.
CREATE TABLE usage_disputes (
    usage_id                   uuid PRIMARY KEY REFERENCES usage_records (usage_id),
    at                         timestamptz NOT NULL,
    organization_id            uuid NOT NULL,
    provider_organization_id   uuid,
    share_id                   uuid,
    instance_id                uuid,
    model                      text NOT NULL,
    reported_prompt_tokens     bigint NOT NULL,
    reported_completion_tokens bigint NOT NULL,
    billed_prompt_tokens       integer NOT NULL CHECK (billed_prompt_tokens >= 0),
    billed_completion_tokens   integer NOT NULL CHECK (billed_completion_tokens >= 0),
    CHECK (reported_prompt_tokens <> billed_prompt_tokens OR reported_completion_tokens <> billed_completion_tokens)
);
CREATE INDEX usage_disputes_org_time ON usage_disputes (organization_id, at);
CREATE INDEX usage_disputes_provider_time ON usage_disputes (provider_organization_id, at)
    WHERE provider_organization_id IS NOT NULL;
