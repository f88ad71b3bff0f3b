// The reconciliation dry run (owners and admins): the organization's tagged
// servers and volumes at Scaleway, what the orchestrator's reconciliation
// would do with each and why, and the instances or volumes that vanished
// at the provider. Without credentials the API answers 409: shown as an
// empty state pointing to the provider settings.
import { useMemo } from 'react';
import { Link } from 'react-router';
import type { ColumnDef } from '@tanstack/react-table';
import { ApiError } from '../api/client';
import type { ReconciliationResource } from '../api/types';
import { DataTable } from '../components/DataTable';
import { Card, DateText, Empty, ErrorMessage, Loading, PageHeader } from '../components/ui';
import { useReconciliation } from './api';
import { graceText, summarize, verdictOf } from './reconciliation';

const SCALEWAY = 'scaleway';

const VERDICT_TONE = { delete: 'bad', keep: 'ok', ignore: 'off' } as const;

export function ReconciliationPage() {
  const report = useReconciliation(SCALEWAY);
  const columns = useMemo<ColumnDef<ReconciliationResource>[]>(
    () => [
      { id: 'kind', accessorKey: 'kind', header: 'Kind', size: 90 },
      { id: 'provider_id', accessorKey: 'provider_id', header: 'Provider id', size: 260 },
      { id: 'zone', accessorKey: 'zone', header: 'Zone', size: 100 },
      {
        id: 'instance',
        accessorFn: (r) => r.instance_id ?? '',
        header: 'Instance',
        size: 120,
        cell: ({ row }) => (row.original.instance_id ? <Link to={`/instances/${row.original.instance_id}`}>{row.original.instance_id.slice(0, 8)}</Link> : '—'),
      },
      { id: 'created_at', accessorKey: 'created_at', header: 'Created', size: 170, cell: ({ row }) => <DateText value={row.original.created_at} /> },
      {
        id: 'verdict',
        accessorFn: (r) => verdictOf(r.verdict).action,
        header: 'Verdict',
        size: 90,
        cell: ({ row }) => {
          const action = verdictOf(row.original.verdict).action;
          return <span className={`badge badge-${VERDICT_TONE[action]}`}>{action}</span>;
        },
      },
      { id: 'reason', accessorFn: (r) => verdictOf(r.verdict).reason, header: 'Reason', size: 380 },
    ],
    [],
  );

  const notConfigured = report.error instanceof ApiError && report.error.code === 'PROVIDER_NOT_CONFIGURED';
  return (
    <>
      <PageHeader title="Reconciliation">
        <button type="button" className="button" disabled={report.isFetching} onClick={() => void report.refetch()}>
          {report.isFetching ? 'Checking…' : 'Check again'}
        </button>
      </PageHeader>
      <p className="muted">A dry run: what the orchestrator's reconciliation would do now with this organization's Scaleway resources. Nothing is changed from here.</p>
      {report.isPending ? (
        <Loading label="Asking Scaleway…" />
      ) : notConfigured ? (
        <Empty>
          No Scaleway credentials for this organization: nothing to reconcile. <Link to="/settings/providers">Set them</Link> first.
        </Empty>
      ) : report.isError ? (
        <ErrorMessage error={report.error} />
      ) : (
        <ReportView report={report.data} columns={columns} />
      )}
    </>
  );
}

function ReportView({ report, columns }: { report: NonNullable<ReturnType<typeof useReconciliation>['data']>; columns: ColumnDef<ReconciliationResource>[] }) {
  const s = summarize(report);
  return (
    <>
      <p data-testid="reconciliation-summary">
        {s.delete} to delete · {s.keep} kept · {s.ignore} never touched · {s.missing} missing — grace window {graceText(report.grace_seconds)}, checked{' '}
        <DateText value={report.generated_at} />
      </p>
      <Card title="Resources">
        <DataTable
          id="reconciliation"
          label="Reconciliation report"
          columns={columns}
          data={report.resources}
          getRowId={(r) => `${r.kind}:${r.zone}:${r.provider_id}`}
          empty="No tagged server or volume at the provider."
        />
      </Card>
      <Card title="Missing at the provider">
        {report.vanished_instances.length + report.missing_volumes.length === 0 ? (
          <Empty>Every live instance's server and volumes are still there.</Empty>
        ) : (
          <ul className="plain-list">
            {report.vanished_instances.map((id) => (
              <li key={id}>
                Instance <Link to={`/instances/${id}`}>{id}</Link>: its server is gone
              </li>
            ))}
            {report.missing_volumes.map((id) => (
              <li key={id}>Volume <code>{id}</code>: gone at the provider</li>
            ))}
          </ul>
        )}
      </Card>
    </>
  );
}
