// The billable statement of a month: GPU time, calls through shares and
// adjustment lines (corrections carried from closed months), to the cent.
// A closed month shows its marker and is a snapshot that never changes;
// owners close a month once it is over. Exports: the API's JSON and CSV.
import { useMemo, useState } from 'react';
import type { ColumnDef } from '@tanstack/react-table';
import { withQuery } from '../api/client';
import type { MonthLine, MonthStatement } from '../api/types';
import { useCan } from '../auth/useMe';
import { DataTable } from '../components/DataTable';
import { Card, DateText, Empty, ErrorMessage, Loading, Money } from '../components/ui';
import { useCloseMonth, useMonthStatement } from './api';
import { formatExactEur } from '../components/format';
import { kindLabel, lineQuantity, monthHasEnded } from './monthStatement';

export function MonthStatementCard({ month }: { month: string }) {
  const statement = useMonthStatement(month);
  const columns = useMemo<ColumnDef<MonthLine>[]>(
    () => [
      { id: 'kind', accessorKey: 'kind', header: 'Kind', size: 150, cell: ({ row }) => kindLabel(row.original.kind) },
      {
        id: 'label',
        accessorKey: 'label',
        header: 'Line',
        size: 320,
        cell: ({ row }) =>
          row.original.kind === 'adjustment' ? (
            <span>
              {row.original.label}
              <br />
              <span className="muted">
                for {row.original.source_month}: {row.original.reason}
              </span>
            </span>
          ) : (
            row.original.label
          ),
      },
      { id: 'quantity', header: 'Quantity', size: 200, cell: ({ row }) => lineQuantity(row.original) },
      { id: 'exact', accessorKey: 'exact_eur', header: 'Exact', size: 150, cell: ({ row }) => <span className="num">{formatExactEur(row.original.exact_eur)}</span> },
      { id: 'amount', accessorKey: 'amount_eur', header: 'Amount', size: 130, cell: ({ row }) => <Money value={row.original.amount_eur} /> },
    ],
    [],
  );
  const exports = (
    <span className="page-actions">
      <a className="button" href={withQuery(`/finops/statements/${month}`, { format: 'csv' })} download={`statement-${month}.csv`}>
        Export statement as CSV
      </a>
      <a className="button" href={withQuery(`/finops/statements/${month}`, { format: 'json' })} download={`statement-${month}.json`}>
        Export statement as JSON
      </a>
    </span>
  );
  return (
    <Card title={`Statement of ${month}`} actions={exports}>
      {statement.isPending ? (
        <Loading />
      ) : statement.isError ? (
        <ErrorMessage error={statement.error} />
      ) : (
        <StatementBody month={month} statement={statement.data} columns={columns} />
      )}
    </Card>
  );
}

function StatementBody({ month, statement, columns }: { month: string; statement: MonthStatement; columns: ColumnDef<MonthLine>[] }) {
  const t = statement.totals;
  return (
    <>
      <ClosedMarker month={month} statement={statement} />
      <dl className="stats money-stats" aria-label="Statement totals">
        <div>
          <dt>Total</dt>
          <dd><Money value={t.total_eur} /></dd>
        </div>
        <div>
          <dt>GPU time</dt>
          <dd><Money value={t.gpu_eur} /></dd>
        </div>
        <div>
          <dt>Consumed</dt>
          <dd><Money value={t.debit_eur} /></dd>
        </div>
        <div>
          <dt>Provided</dt>
          <dd><Money value={t.credit_eur} /></dd>
        </div>
        <div>
          <dt>Adjustments</dt>
          <dd><Money value={t.adjustments_eur} /></dd>
        </div>
      </dl>
      {statement.lines.length === 0 ? (
        <Empty>Nothing was billed this month.</Empty>
      ) : (
        <DataTable
          id="month-statement-lines"
          label="Billable statement lines"
          columns={columns}
          data={statement.lines}
          getRowId={(l) => `${l.kind}-${l.label}-${l.source_month}-${l.adjustment_id ?? ''}`}
        />
      )}
      {statement.corrections.length > 0 ? (
        <div aria-label="Corrections of this month">
          <h3>Corrections of this month (already in its lines)</h3>
          <ul>
            {statement.corrections.map((c) => (
              <li key={c.id}>
                {c.label}: <Money value={c.amount_eur} /> — {c.reason} <span className="muted">({c.recorded_by}, <DateText value={c.recorded_at} />)</span>
              </li>
            ))}
          </ul>
        </div>
      ) : null}
    </>
  );
}

function ClosedMarker({ month, statement }: { month: string; statement: MonthStatement }) {
  const mayClose = useCan('CloseStatements');
  const close = useCloseMonth(month);
  const [note, setNote] = useState('');
  if (statement.closed) {
    return (
      <p className="notice" role="status" aria-label="Month status">
        <span className="badge badge-ok">Closed</span> on <DateText value={statement.closed.closed_at} /> by {statement.closed.closed_by_email}
        {statement.closed.note ? ` — ${statement.closed.note}` : ''}. This statement is a snapshot: later corrections are adjustment lines of the next open month.
      </p>
    );
  }
  const ended = monthHasEnded(month);
  return (
    <div className="notice" role="status" aria-label="Month status">
      <span className="badge badge-busy">Open</span>{' '}
      {ended ? 'This month is over and can be closed.' : 'This month is still running; its lines change as usage and cost arrive.'}
      {ended && mayClose ? (
        <form
          className="filters"
          onSubmit={(e) => {
            e.preventDefault();
            close.mutate(note);
          }}
        >
          <label>
            Note (optional)
            <input value={note} maxLength={500} onChange={(e) => setNote(e.target.value)} />
          </label>
          <button type="submit" disabled={close.isPending}>
            Close {month}
          </button>
          {close.isError ? <ErrorMessage error={close.error} /> : null}
        </form>
      ) : null}
    </div>
  );
}
