// The organization's services, live (`service.updated` on the events
// stream): state, replicas running / wished / bounds, and a "cold" badge for
// a model at zero that the next request wakes up.
import { useMemo, useState } from 'react';
import { Link } from 'react-router';
import type { ColumnDef } from '@tanstack/react-table';
import type { Service } from '../api/types';
import { useLiveState } from '../app/Layout';
import { useCan } from '../auth/useMe';
import { DataTable } from '../components/DataTable';
import { Badge, DateText, ErrorMessage, Loading, PageHeader, StatusBadge } from '../components/ui';
import { useServices } from './api';
import { CreateServiceDialog } from './CreateServiceDialog';
import { isCold } from './policy';

/** The state, with the cold badge when it applies. */
export function ServiceState({ service }: { service: Service }) {
  return (
    <span className="row-actions">
      <StatusBadge kind="service" status={service.state} />
      {isCold(service) ? (
        <span title="At zero replicas: the next request is held while a replica starts">
          <Badge tone="busy">cold</Badge>
        </span>
      ) : null}
    </span>
  );
}

export function replicasText(s: Service): string {
  return `${s.active_replicas} / ${s.desired_replicas} (${s.min_replicas}–${s.max_replicas})`;
}

export function ServicesPage() {
  const services = useServices();
  const canManage = useCan('ManageInstances');
  const live = useLiveState();
  const [creating, setCreating] = useState(false);

  const columns = useMemo<ColumnDef<Service>[]>(
    () => [
      { id: 'name', accessorKey: 'name', header: 'Name', size: 200, cell: ({ row }) => <Link to={`/services/${row.original.id}`}>{row.original.name}</Link> },
      { id: 'model_id', accessorKey: 'model_id', header: 'Model', size: 240 },
      { id: 'state', accessorKey: 'state', header: 'State', size: 150, cell: ({ row }) => <ServiceState service={row.original} /> },
      {
        id: 'replicas',
        accessorKey: 'active_replicas',
        header: 'Replicas (running / desired, min–max)',
        size: 220,
        cell: ({ row }) => <span title="running / desired (min–max)">{replicasText(row.original)}</span>,
      },
      {
        id: 'target',
        accessorFn: (s) => s.target_outstanding ?? null,
        header: 'Target',
        size: 170,
        enableSorting: false,
        cell: ({ row }) => policyText(row.original),
      },
      { id: 'last_scaled_at', accessorKey: 'last_scaled_at', header: 'Last scaled', size: 190, cell: ({ getValue }) => <DateText value={getValue<string | null>()} /> },
      { id: 'created_at', accessorKey: 'created_at', header: 'Created', size: 190, cell: ({ getValue }) => <DateText value={getValue<string>()} /> },
    ],
    [],
  );

  return (
    <>
      <PageHeader title="Services">
        <span className={`live-label live-${live}`} role="status">
          {live === 'live' ? '● Live' : live === 'offline' ? 'Offline' : 'Connecting…'}
        </span>
        {canManage ? (
          <button type="button" className="button button-primary" onClick={() => setCreating(true)}>
            Create a service
          </button>
        ) : null}
      </PageHeader>
      {services.isPending ? (
        <Loading />
      ) : services.isError ? (
        <ErrorMessage error={services.error} />
      ) : (
        <DataTable
          id="services"
          label="Services"
          columns={columns}
          data={services.data}
          getRowId={(s) => s.id}
          defaults={{ sorting: [{ id: 'created_at', desc: true }] }}
          empty={canManage ? 'No service yet: create one.' : 'No service yet.'}
        />
      )}
      {canManage ? <CreateServiceDialog open={creating} onClose={() => setCreating(false)} /> : null}
    </>
  );
}

/** The scaling signals in short ("4 outstanding · 2000 ms p95"). */
export function policyText(s: Service): string {
  const parts = [];
  if (s.target_outstanding !== null && s.target_outstanding !== undefined) parts.push(`${s.target_outstanding} outstanding`);
  if (s.target_ttft_p95_ms !== null && s.target_ttft_p95_ms !== undefined) parts.push(`${s.target_ttft_p95_ms} ms p95`);
  return parts.length > 0 ? parts.join(' · ') : 'none';
}
