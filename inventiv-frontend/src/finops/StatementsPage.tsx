// Monthly statements (owners and managers): the billable statement of the
// month (GPU time, shares, adjustment lines; closed months are snapshots),
// then the share chargeback per other organization and offering, what the
// current organization consumed (debit) and provided (credit), with the
// API's exact sums of the usage rows' charges. Below, the month's disputes:
// usage a worker reported beyond what the request made plausible, charged at
// the bound (both sides see them).
import { useMemo, useState } from 'react';
import type { ColumnDef } from '@tanstack/react-table';
import { withQuery } from '../api/client';
import type { Dispute, StatementLine } from '../api/types';
import { DataTable } from '../components/DataTable';
import { Card, Empty, ErrorMessage, Field, Loading, Money, PageHeader } from '../components/ui';
import { useDisputes, useStatement } from './api';
import { MonthStatementCard } from './MonthStatementCard';
import { utcMonth } from './money';

export function StatementsPage() {
  const [month, setMonth] = useState(() => utcMonth());
  const statement = useStatement(month);
  const disputes = useDisputes(monthRange(month));
  const columns = useMemo<ColumnDef<StatementLine>[]>(
    () => [
      {
        id: 'direction',
        accessorKey: 'direction',
        header: 'Direction',
        size: 160,
        cell: ({ row }) => (row.original.direction === 'debit' ? 'Debit (consumed)' : 'Credit (provided)'),
      },
      { id: 'counterparty', accessorKey: 'counterparty_org_slug', header: 'Organization', size: 170 },
      { id: 'address', accessorKey: 'address', header: 'Offering', size: 230 },
      { id: 'requests', accessorKey: 'requests', header: 'Requests', size: 105 },
      { id: 'prompt', accessorKey: 'prompt_tokens', header: 'Prompt tokens', size: 140 },
      // Part of the prompt tokens, charged at the offering's cached rate.
      { id: 'cached', accessorKey: 'cached_prompt_tokens', header: 'Cached prompt tokens', size: 170 },
      { id: 'completion', accessorKey: 'completion_tokens', header: 'Completion tokens', size: 170 },
      { id: 'amount', accessorKey: 'amount_eur', header: 'Amount', size: 140, cell: ({ row }) => <Money value={row.original.amount_eur} /> },
    ],
    [],
  );
  const disputeColumns = useMemo<ColumnDef<Dispute>[]>(
    () => [
      { id: 'at', accessorKey: 'at', header: 'At (UTC)', size: 200 },
      { id: 'side', accessorKey: 'side', header: 'We were', size: 110 },
      { id: 'provider', accessorKey: 'provider_org_slug', header: 'Provider', size: 150 },
      { id: 'consumer', accessorKey: 'consumer_org_slug', header: 'Consumer', size: 150 },
      { id: 'model', accessorKey: 'model', header: 'Model', size: 200 },
      {
        id: 'prompt',
        header: 'Prompt tokens (reported → billed)',
        size: 250,
        cell: ({ row }) => `${row.original.reported_prompt_tokens} → ${row.original.billed_prompt_tokens}`,
      },
      {
        id: 'completion',
        header: 'Completion tokens (reported → billed)',
        size: 270,
        cell: ({ row }) => `${row.original.reported_completion_tokens} → ${row.original.billed_completion_tokens}`,
      },
    ],
    [],
  );
  return (
    <>
      <PageHeader title="Statements">
        <a className="button" href={withQuery('/finops/statements', { month, format: 'csv' })} download={`statement-${month}.csv`}>
          Download CSV
        </a>
      </PageHeader>
      <div className="filters">
        <Field label="Month (UTC)" type="month" value={month} required onChange={(e) => e.target.value && setMonth(e.target.value)} />
      </div>
      <MonthStatementCard month={month} />
      {statement.isPending ? <Loading /> : statement.isError ? <ErrorMessage error={statement.error} /> : (
        <>
          <dl className="stats money-stats" aria-label="Totals">
            <div>
              <dt>Debit (we owe)</dt>
              <dd>
                <Money value={statement.data.debit_total_eur} />
              </dd>
            </div>
            <div>
              <dt>Credit (owed to us)</dt>
              <dd>
                <Money value={statement.data.credit_total_eur} />
              </dd>
            </div>
          </dl>
          <Card title={`Share chargeback of ${statement.data.month} (exact charges, live)`}>
            {statement.data.lines.length === 0 ? (
              <Empty>No shared model was called this month.</Empty>
            ) : (
              <DataTable
                id="statement-lines"
                label="Statement lines"
                columns={columns}
                data={statement.data.lines}
                getRowId={(l) => `${l.direction}-${l.counterparty_org_slug}-${l.offering_id}`}
              />
            )}
          </Card>
        </>
      )}
      <Card title="Disputed usage">
        {disputes.isPending ? <Loading /> : disputes.isError ? <ErrorMessage error={disputes.error} /> : disputes.data.length === 0 ? (
          <Empty>No implausible usage report this month.</Empty>
        ) : (
          <DataTable id="disputes" label="Disputed usage" columns={disputeColumns} data={disputes.data} getRowId={(d) => d.usage_id} />
        )}
      </Card>
    </>
  );
}

/** The month `YYYY-MM` as a UTC range for the API's `from`/`to`. */
function monthRange(month: string): Record<string, string> {
  const [year = 1970, m = 1] = month.split('-').map(Number);
  const from = new Date(Date.UTC(year, m - 1, 1));
  const to = new Date(Date.UTC(year, m, 1));
  return { from: from.toISOString(), to: to.toISOString() };
}
