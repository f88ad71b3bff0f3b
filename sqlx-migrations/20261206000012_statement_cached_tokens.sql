-- Statements show the cached prompt tokens of their call lines apart
-- (usage_records.cached_prompt_tokens, priced at the offering's cached rate
-- in charged_eur). As 20261205000031's statement_live_lines, with
-- cached_tokens added after the other columns; GPU lines have none.
-- Lines stored before this migration keep NULL: their snapshot never changes.

ALTER TABLE statement_lines ADD COLUMN cached_tokens bigint CHECK (cached_tokens >= 0);

DROP FUNCTION statement_live_lines(uuid, timestamptz, timestamptz);
CREATE FUNCTION statement_live_lines(p_org uuid, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (kind text, key text, label text, gpu_seconds numeric, requests bigint, tokens bigint, exact_eur numeric,
               cached_tokens bigint)
LANGUAGE sql STABLE AS $$
    SELECT 'gpu', 'gpu:' || b.provider || ':' || b.instance_type,
           'GPU time, ' || b.provider || ' ' || b.instance_type,
           sum(b.seconds), NULL::bigint, NULL::bigint, sum(b.cost_eur), NULL::bigint
      FROM cost_buckets b
     WHERE b.organization_id = p_org AND b.minute >= p_from AND b.minute < p_to
     GROUP BY b.provider, b.instance_type
    UNION ALL
    SELECT m.kind, m.kind || ':' || m.counterparty || ':' || m.offering_id,
           CASE m.kind WHEN 'debit' THEN 'Calls to ' || p.slug || '/' || o.model_code
                       ELSE 'Calls served by ' || p.slug || '/' || o.model_code || ' to ' || c.slug END,
           NULL, count(*), sum(m.tokens)::bigint,
           CASE m.kind WHEN 'debit' THEN sum(m.charged) ELSE -sum(m.charged) END,
           sum(m.cached)::bigint
      FROM (SELECT CASE WHEN u.organization_id = p_org THEN 'debit' ELSE 'credit' END AS kind,
                   CASE WHEN u.organization_id = p_org THEN u.provider_organization_id ELSE u.organization_id END AS counterparty,
                   u.offering_id, u.prompt_tokens + u.completion_tokens AS tokens, u.cached_prompt_tokens AS cached,
                   COALESCE(u.charged_eur, 0) AS charged
              FROM usage_records u
             WHERE u.offering_id IS NOT NULL AND u.at >= p_from AND u.at < p_to
               AND (u.organization_id = p_org OR u.provider_organization_id = p_org)) m
      JOIN organizations c ON c.id = m.counterparty
      JOIN offerings o ON o.id = m.offering_id
      JOIN organizations p ON p.id = o.organization_id
     GROUP BY m.kind, m.counterparty, m.offering_id, p.slug, o.model_code, c.slug
$$;
