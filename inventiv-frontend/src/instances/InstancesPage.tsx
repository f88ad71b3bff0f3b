// The organization's instances, live: status and progress move as the
// orchestrator works (events stream → query cache → this table).
import { useEffect, useMemo, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import type { ColumnDef } from '@tanstack/react-table';
import type { Instance } from '../api/types';
import { useLiveState } from '../app/Layout';
import { useCan } from '../auth/useMe';
import { DataTable } from '../components/DataTable';
import { DateText, ErrorMessage, Loading, Money, PageHeader, ProgressBar, StatusBadge } from '../components/ui';
import { allowedActions, useArchivedInstances, useInstanceAction, useInstances, type InstanceAction } from './api';
import { DeployDialog } from './DeployDialog';
import { TerminateDialog } from './TerminateDialog';

const ACTION_LABEL: Record<InstanceAction, string> = { terminate: 'Terminate', reinstall: 'Reinstall', archive: 'Archive' };

/** What the instances' search box looks in. */
const instanceText = (i: Instance) => [i.name, i.model_id, i.status, i.provider, i.instance_type, i.ip_address ?? '', i.id].join(' ');

export function InstancesPage() {
  const instances = useInstances();
  const canManage = useCan('ManageInstances');
  const live = useLiveState();
  // `?deploy=1` (the dashboard's checklist) opens the deploy dialog; the
  // address loses it at once (a reload does not open it again).
  const [params, setParams] = useSearchParams();
  const [deploying, setDeploying] = useState(params.get('deploy') === '1');
  useEffect(() => {
    if (params.has('deploy')) {
      setDeploying(true);
      setParams({}, { replace: true });
    }
  }, [params, setParams]);
  const [showArchived, setShowArchived] = useState(false);
  const archived = useArchivedInstances(showArchived);
  const action = useInstanceAction();
  const [terminating, setTerminating] = useState<Instance | null>(null);

  const columns = useMemo<ColumnDef<Instance>[]>(() => {
    const cols: ColumnDef<Instance>[] = [
      {
        id: 'name',
        accessorKey: 'name',
        header: 'Name',
        size: 200,
        cell: ({ row }) => <Link to={`/instances/${row.original.id}`}>{row.original.name}</Link>,
      },
      { id: 'status', accessorKey: 'status', header: 'Status', size: 150, cell: ({ row }) => <StatusBadge kind="instance" status={row.original.status} /> },
      {
        id: 'progress',
        accessorKey: 'progress',
        header: 'Progress',
        size: 160,
        cell: ({ row }) => <ProgressBar value={row.original.progress} label={`Progress of ${row.original.name}`} />,
      },
      { id: 'model_id', accessorKey: 'model_id', header: 'Model', size: 240 },
      { id: 'provider', accessorKey: 'provider', header: 'Provider', size: 120 },
      { id: 'zone', accessorKey: 'zone', header: 'Zone', size: 120 },
      { id: 'instance_type', accessorKey: 'instance_type', header: 'Type', size: 140 },
      { id: 'worker_status', accessorKey: 'worker_status', header: 'Worker', size: 100, cell: ({ getValue }) => getValue<string | null>() ?? '—' },
      {
        id: 'last_heartbeat_at',
        accessorKey: 'last_heartbeat_at',
        header: 'Last heartbeat',
        size: 190,
        cell: ({ getValue }) => <DateText value={getValue<string | null>()} />,
      },
      {
        id: 'cost_so_far_eur',
        accessorFn: (i) => Number(i.cost_so_far_eur),
        header: 'Cost so far',
        size: 110,
        cell: ({ row }) => <Money value={row.original.cost_so_far_eur} />,
      },
      { id: 'ip_address', accessorKey: 'ip_address', header: 'Address', size: 130, cell: ({ getValue }) => getValue<string | null>() ?? '—' },
      { id: 'created_at', accessorKey: 'created_at', header: 'Created', size: 190, cell: ({ getValue }) => <DateText value={getValue<string>()} /> },
    ];
    if (canManage) {
      cols.push({
        id: 'actions',
        header: 'Actions',
        size: 200,
        enableSorting: false,
        cell: ({ row }) => {
          const i = row.original;
          return (
            <span className="row-actions">
              {allowedActions(i.status).map((a) => (
                <button
                  key={a}
                  type="button"
                  className={a === 'terminate' ? 'button button-small button-danger' : 'button button-small'}
                  aria-label={`${ACTION_LABEL[a]} ${i.name}`}
                  disabled={action.isPending}
                  onClick={() => {
                    if (a === 'terminate') setTerminating(i);
                    else action.mutate({ id: i.id, action: a });
                  }}
                >
                  {ACTION_LABEL[a]}
                </button>
              ))}
            </span>
          );
        },
      });
    }
    return cols;
  }, [canManage, action]);

  return (
    <>
      <PageHeader title="Instances">
        <span className={`live-label live-${live}`} role="status">
          {live === 'live' ? '● Live' : live === 'offline' ? 'Offline' : 'Connecting…'}
        </span>
        {canManage ? (
          <button type="button" className="button button-primary" onClick={() => setDeploying(true)}>
            Deploy a model
          </button>
        ) : null}
      </PageHeader>
      <ErrorMessage error={action.error} />
      {instances.isPending ? (
        <Loading />
      ) : instances.isError ? (
        <ErrorMessage error={instances.error} />
      ) : (
        <DataTable
          id="instances"
          label="Instances"
          columns={columns}
          data={showArchived ? [...instances.data, ...(archived.data ?? [])] : instances.data}
          getRowId={(i) => i.id}
          searchText={instanceText}
          pageSize={25}
          defaults={{ sorting: [{ id: 'created_at', desc: true }], columnVisibility: { provider: false, last_heartbeat_at: false, ip_address: false, cost_so_far_eur: false } }}
          empty={canManage ? 'No instance yet: deploy a model.' : 'No instance yet.'}
          toolbar={
            <label className="checkbox">
              <input type="checkbox" checked={showArchived} onChange={(e) => setShowArchived(e.target.checked)} /> Show archived
            </label>
          }
        />
      )}
      <TerminateDialog
        instance={terminating}
        onClose={() => setTerminating(null)}
        onConfirm={(t) => {
          setTerminating(null);
          action.mutate({ id: t.id, action: 'terminate' });
        }}
      />
      {canManage ? <DeployDialog open={deploying} onClose={() => setDeploying(false)} /> : null}
    </>
  );
}
