-- Two expressions the API used to splice into its SQL text, as functions, so
-- every statement that reads them is a fixed text checked at build time.

-- An invitation's status (the Rust InvitationStatus): accepted and revoked
-- are recorded, expired is its expiry passed. STABLE for now(); a plain SQL
-- expression, so the planner inlines it.
CREATE FUNCTION invitation_status(p_accepted_at timestamptz, p_revoked_at timestamptz, p_expires_at timestamptz)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_accepted_at IS NOT NULL THEN 'accepted'
                WHEN p_revoked_at IS NOT NULL THEN 'revoked'
                WHEN p_expires_at <= now() THEN 'expired'
                ELSE 'pending' END
$$;

-- The lines of an organization's open month [p_from, p_to) (p_month its
-- first day), in statement order with their position: its live lines
-- (statement_live_lines), then the adjustments carried into it from closed
-- months. The statement read and the close both use it, so a closed month
-- stores exactly what its live statement showed.
CREATE FUNCTION statement_month_lines(p_org uuid, p_from timestamptz, p_to timestamptz, p_month date)
RETURNS TABLE ("position" integer, kind text, line_key text, label text, source_month date, gpu_seconds numeric,
               requests bigint, tokens bigint, cached_tokens bigint, exact_eur numeric, amount_eur numeric,
               adjustment_id uuid, instance_id uuid, reason text)
LANGUAGE sql STABLE AS $$
    SELECT row_number() OVER (ORDER BY x.ord, x.kind, x.label, x.source_month, x.adjustment_id)::int,
           x.kind, x.line_key, x.label, x.source_month, x.gpu_seconds, x.requests, x.tokens, x.cached_tokens, x.exact_eur,
           round(x.exact_eur, 2), x.adjustment_id, x.instance_id, x.reason
      FROM (SELECT 0 AS ord, l.kind, l.key AS line_key, l.label, p_month AS source_month, l.gpu_seconds, l.requests, l.tokens,
                   l.cached_tokens, l.exact_eur, NULL::uuid AS adjustment_id, NULL::uuid AS instance_id, NULL::text AS reason
              FROM statement_live_lines(p_org, p_from, p_to) l
            UNION ALL
            SELECT 1, 'adjustment', a.line_key, a.label, a.period_month, a.gpu_seconds, NULL, NULL, NULL, a.amount_eur, a.id,
                   a.instance_id, a.reason
              FROM statement_adjustments a
             WHERE a.organization_id = p_org AND a.statement_month = p_month AND a.period_month < p_month) x
$$;
