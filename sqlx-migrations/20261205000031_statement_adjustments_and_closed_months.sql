-- Monthly statements you can bill on (inventiv-api/src/finops/statement.rs,
-- finops/adjustments.rs, routes/statement_months.rs).
--
-- A statement of one organization and one month (UTC) has lines: GPU time
-- per provider and instance type (cost buckets), calls made through other
-- organizations' offerings (debit) and calls served through its own
-- (credit, negative), and adjustment lines. Each line's amount_eur is its
-- exact amount rounded half away from zero to the cent; a total is the sum
-- of those cents, so totals equal the sum of their lines exactly.
--
-- A closed month is a stored snapshot (statement_closes + statement_lines)
-- that triggers keep immutable. Whatever changes a month's amounts after the
-- fact is an adjustment row: who recorded it, what (the line it corrects,
-- the instance), why, the amount and the period. An adjustment whose period
-- lies in an open month is a correction already in that month's lines (the
-- cost minutes were corrected in place); one whose period lies in a closed
-- month is a line of the first open month after it.

-- The live lines of a statement, from the buckets and the usage rows.
-- key identifies a line across months (never shown): what an adjustment
-- corrects and what a late record is matched on.
CREATE FUNCTION statement_live_lines(p_org uuid, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (kind text, key text, label text, gpu_seconds numeric, requests bigint, tokens bigint, exact_eur numeric)
LANGUAGE sql STABLE AS $$
    SELECT 'gpu', 'gpu:' || b.provider || ':' || b.instance_type,
           'GPU time, ' || b.provider || ' ' || b.instance_type,
           sum(b.seconds), NULL::bigint, NULL::bigint, sum(b.cost_eur)
      FROM cost_buckets b
     WHERE b.organization_id = p_org AND b.minute >= p_from AND b.minute < p_to
     GROUP BY b.provider, b.instance_type
    UNION ALL
    SELECT m.kind, m.kind || ':' || m.counterparty || ':' || m.offering_id,
           CASE m.kind WHEN 'debit' THEN 'Calls to ' || p.slug || '/' || o.model_code
                       ELSE 'Calls served by ' || p.slug || '/' || o.model_code || ' to ' || c.slug END,
           NULL, count(*), sum(m.tokens)::bigint,
           CASE m.kind WHEN 'debit' THEN sum(m.charged) ELSE -sum(m.charged) END
      FROM (SELECT CASE WHEN u.organization_id = p_org THEN 'debit' ELSE 'credit' END AS kind,
                   CASE WHEN u.organization_id = p_org THEN u.provider_organization_id ELSE u.organization_id END AS counterparty,
                   u.offering_id, u.prompt_tokens + u.completion_tokens AS tokens, COALESCE(u.charged_eur, 0) AS charged
              FROM usage_records u
             WHERE u.offering_id IS NOT NULL AND u.at >= p_from AND u.at < p_to
               AND (u.organization_id = p_org OR u.provider_organization_id = p_org)) m
      JOIN organizations c ON c.id = m.counterparty
      JOIN offerings o ON o.id = m.offering_id
      JOIN organizations p ON p.id = o.organization_id
     GROUP BY m.kind, m.counterparty, m.offering_id, p.slug, o.model_code, c.slug
$$;

CREATE TABLE statement_adjustments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    -- late_termination: an end time recorded after buckets past it were
    -- written; late_record: usage or cost minutes of a closed month that
    -- arrived after it was closed.
    kind            text NOT NULL CHECK (kind IN ('late_termination', 'late_record')),
    line_key        text NOT NULL,
    label           text NOT NULL,
    instance_id     uuid REFERENCES instances (id),
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL CHECK (period_end > period_start),
    -- The month the corrected amounts belong to, and the statement carrying
    -- the adjustment (the same month while it is open).
    period_month    date NOT NULL CHECK (extract(day FROM period_month) = 1),
    statement_month date NOT NULL CHECK (extract(day FROM statement_month) = 1 AND statement_month >= period_month),
    gpu_seconds     numeric(14, 6),
    amount_eur      numeric(24, 12) NOT NULL,
    reason          text NOT NULL,
    recorded_by     text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX statement_adjustments_statement ON statement_adjustments (organization_id, statement_month);
CREATE INDEX statement_adjustments_period ON statement_adjustments (organization_id, period_month);

CREATE TABLE statement_closes (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    month           date NOT NULL CHECK (extract(day FROM month) = 1),
    closed_at       timestamptz NOT NULL DEFAULT now(),
    closed_by       uuid NOT NULL REFERENCES users (id),
    closed_by_email text NOT NULL,
    note            text,
    total_eur       numeric(16, 2) NOT NULL,
    PRIMARY KEY (organization_id, month)
);

CREATE TABLE statement_lines (
    organization_id uuid NOT NULL,
    month           date NOT NULL,
    position        integer NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('gpu', 'debit', 'credit', 'adjustment')),
    line_key        text NOT NULL,
    label           text NOT NULL,
    -- The month the amount belongs to (earlier than month for adjustments).
    source_month    date NOT NULL,
    gpu_seconds     numeric(14, 6),
    requests        bigint,
    tokens          bigint,
    exact_eur       numeric NOT NULL,
    amount_eur      numeric(16, 2) NOT NULL CHECK (amount_eur = round(exact_eur, 2)),
    adjustment_id   uuid REFERENCES statement_adjustments (id),
    instance_id     uuid,
    reason          text,
    PRIMARY KEY (organization_id, month, position),
    FOREIGN KEY (organization_id, month) REFERENCES statement_closes (organization_id, month)
);

-- The first month from p_from on that the organization has not closed: the
-- statement that carries an adjustment of p_from's amounts.
CREATE FUNCTION statement_open_month(p_org uuid, p_from date) RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT min(s.m)::date
      FROM generate_series(p_from::timestamp,
                           (SELECT greatest(max(c.month), p_from) FROM statement_closes c WHERE c.organization_id = p_org)::timestamp + interval '1 month',
                           interval '1 month') AS s(m)
     WHERE NOT EXISTS (SELECT 1 FROM statement_closes c WHERE c.organization_id = p_org AND c.month = s.m::date)
$$;

-- Closed statements and recorded adjustments never change: no UPDATE,
-- DELETE or TRUNCATE for anyone (as audit_logs).
CREATE FUNCTION statement_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is immutable (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER statement_closes_immutable BEFORE UPDATE OR DELETE ON statement_closes
    FOR EACH ROW EXECUTE FUNCTION statement_immutable();
CREATE TRIGGER statement_lines_immutable BEFORE UPDATE OR DELETE ON statement_lines
    FOR EACH ROW EXECUTE FUNCTION statement_immutable();
CREATE TRIGGER statement_adjustments_immutable BEFORE UPDATE OR DELETE ON statement_adjustments
    FOR EACH ROW EXECUTE FUNCTION statement_immutable();
CREATE TRIGGER statement_closes_no_truncate BEFORE TRUNCATE ON statement_closes
    FOR EACH STATEMENT EXECUTE FUNCTION statement_immutable();
CREATE TRIGGER statement_lines_no_truncate BEFORE TRUNCATE ON statement_lines
    FOR EACH STATEMENT EXECUTE FUNCTION statement_immutable();
CREATE TRIGGER statement_adjustments_no_truncate BEFORE TRUNCATE ON statement_adjustments
    FOR EACH STATEMENT EXECUTE FUNCTION statement_immutable();
REVOKE UPDATE, DELETE, TRUNCATE ON statement_closes, statement_lines, statement_adjustments FROM PUBLIC;
