// Monthly statements (owners and managers): the billable statement of the
// month (GPU time, shares, adjustment lines; closed months are snapshots),
// then the share chargeback per other organization and offering, what the
// current organization consumed (debit) and provided (credit), with the
// API's exact sums of the usage rows' charges.
import { useMemo, useState } from 'react';
import type { ColumnDef } from '@tanstack/react-table';
import { withQuery } from '../api/client';
import type { StatementLine } from '../api/types';
import { DataTable } from '../components/DataTable';
import { Card, Empty, ErrorMessage, Field, Loading, PageHeader } from '../components/ui';
import { useStatement } from './api';
import { MonthStatementCard } from './MonthStatementCard';
import { formatEur, utcMonth } from './money';

export function StatementsPage() {
  const [month, setMonth] = useState(() => utcMonth());
  const statement = useStatement(month);
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
      { id: 'completion', accessorKey: 'completion_tokens', header: 'Completion tokens', size: 170 },
      { id: 'amount', accessorKey: 'amount_eur', header: 'Amount', size: 140, cell: ({ row }) => formatEur(row.original.amount_eur) },
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
              <dd>{formatEur(statement.data.debit_total_eur)}</dd>
            </div>
            <div>
              <dt>Credit (owed to us)</dt>
              <dd>{formatEur(statement.data.credit_total_eur)}</dd>
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
    </>
  );
}
