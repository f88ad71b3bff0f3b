-- Tokens priced as engines count them.
--
-- Usage: the prompt tokens the engine served from its prefix cache
-- (`usage.prompt_tokens_details.cached_tokens`, vLLM with
-- --enable-prompt-tokens-details) and the reasoning tokens among the
-- completion tokens (`usage.completion_tokens_details.reasoning_tokens`,
-- when an engine reports them) are kept apart. Both are parts of the
-- counts already there, never more: cached <= prompt, reasoning <= completion.
--
-- Prices: a price version may give cached prompt tokens their own rate
-- (NULL: the input rate), never above the input rate. The charge becomes
--   charged_eur = ((prompt - cached) x input + cached x cached_input
--                  + completion x output) / 1000, exact.

ALTER TABLE usage_records
    ADD COLUMN cached_prompt_tokens integer NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens     integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT usage_records_cached_within_prompt
        CHECK (cached_prompt_tokens >= 0 AND cached_prompt_tokens <= prompt_tokens),
    ADD CONSTRAINT usage_records_reasoning_within_completion
        CHECK (reasoning_tokens >= 0 AND reasoning_tokens <= completion_tokens);

ALTER TABLE offering_prices
    ADD COLUMN cached_input_eur_per_1k numeric(12, 6),
    ADD CONSTRAINT offering_prices_cached_input_bounds
        CHECK (cached_input_eur_per_1k >= 0 AND cached_input_eur_per_1k <= input_eur_per_1k);

-- The price a share pays at `p_at`: (version, input, output, cached input)
-- per 1k tokens. As before (20261205000012), with the cached rate carried
-- along (NULL in a version: its input rate); a higher cached rate is a raise
-- like any other.
DROP FUNCTION share_price(uuid, timestamptz, interval);
CREATE FUNCTION share_price(p_share uuid, p_at timestamptz, p_notice interval)
RETURNS TABLE (version_id uuid, input_eur_per_1k numeric, output_eur_per_1k numeric,
               cached_input_eur_per_1k numeric)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN x.raised THEN x.k_id ELSE x.c_id END,
           CASE WHEN x.raised THEN COALESCE(x.k_in, 0) ELSE x.c_in END,
           CASE WHEN x.raised THEN COALESCE(x.k_out, 0) ELSE x.c_out END,
           CASE WHEN x.raised THEN COALESCE(x.k_cached, 0) ELSE x.c_cached END
      FROM (SELECT c.id AS c_id, c.input_eur_per_1k AS c_in, c.output_eur_per_1k AS c_out, c.cached AS c_cached,
                   k.id AS k_id, k.input_eur_per_1k AS k_in, k.output_eur_per_1k AS k_out, k.cached AS k_cached,
                   c.input_eur_per_1k > COALESCE(k.input_eur_per_1k, 0)
                     OR c.output_eur_per_1k > COALESCE(k.output_eur_per_1k, 0)
                     OR c.cached > COALESCE(k.cached, 0) AS raised
              FROM offering_shares s
              -- The provider's price in force (the share's own wins).
              LEFT JOIN LATERAL (
                   SELECT v.id, v.input_eur_per_1k, v.output_eur_per_1k,
                          COALESCE(v.cached_input_eur_per_1k, v.input_eur_per_1k) AS cached
                     FROM offering_prices v
                    WHERE v.offering_id = s.offering_id AND (v.share_id = s.id OR v.share_id IS NULL)
                      AND v.effective_at <= p_at
                    ORDER BY v.share_id IS NULL, v.effective_at DESC LIMIT 1) c ON true
              -- The same among the versions the consumer knew of in time.
              LEFT JOIN LATERAL (
                   SELECT v.id, v.input_eur_per_1k, v.output_eur_per_1k,
                          COALESCE(v.cached_input_eur_per_1k, v.input_eur_per_1k) AS cached
                     FROM offering_prices v
                    WHERE v.offering_id = s.offering_id AND (v.share_id = s.id OR v.share_id IS NULL)
                      AND v.effective_at <= p_at
                      AND v.created_at <= GREATEST(p_at - p_notice, COALESCE(s.prices_accepted_at, s.accepted_at))
                    ORDER BY v.share_id IS NULL, v.effective_at DESC LIMIT 1) k ON true
             WHERE s.id = p_share) x
$$;
