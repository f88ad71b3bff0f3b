// The organization's own GPU servers (hosts of the `ssh` provider): where
// each is, its GPUs and cost, its status and last verification; owners and
// admins register, verify, drain, undrain and remove them.
import { useMemo, useState } from 'react';
import { Link } from 'react-router';
import type { ColumnDef } from '@tanstack/react-table';
import type { Host } from '../api/types';
import { useCan } from '../auth/useMe';
import { DataTable, NUMERIC } from '../components/DataTable';
import { Badge, DateText, ErrorMessage, Loading, Money, PageHeader, StatusBadge } from '../components/ui';
import { allowedHostActions, gpusText, gpuUseText, HOST_ACTION_LABEL, hostActionQuestion, useHostAction, useHosts, type HostAction } from './api';
import { RegisterHostDialog } from './RegisterHostDialog';

type HostActionMutation = ReturnType<typeof useHostAction>;

/** The actions a host's status allows, each asking first when it matters; the running one says so. */
export function HostActionButtons({ host, action, small }: { host: Host; action: HostActionMutation; small?: boolean }) {
  const running = action.isPending ? action.variables : undefined;
  const size = small ? ' button-small' : '';
  return (
    <span className="row-actions">
      {allowedHostActions(host.status).map((a: HostAction) => (
        <button
          key={a}
          type="button"
          className={a === 'remove' ? `button button-danger${size}` : `button${size}`}
          aria-label={`${HOST_ACTION_LABEL[a]} ${host.label}`}
          disabled={action.isPending}
          onClick={() => {
            const question = hostActionQuestion(a, host);
            if (question === null || window.confirm(question)) action.mutate({ id: host.id, action: a });
          }}
        >
          {running?.id === host.id && running.action === a && a === 'verify' ? 'Verifying…' : HOST_ACTION_LABEL[a]}
        </button>
      ))}
    </span>
  );
}

/** What the last verification found, once it answered (an unreachable host is an answer, not an error). */
export function VerificationOutcome({ action }: { action: HostActionMutation }) {
  const host = action.isSuccess && action.variables.action === 'verify' ? action.data : undefined;
  if (!host) return null;
  return (
    <p role="status">
      {host.label}: <StatusBadge kind="host" status={host.status} /> {host.last_check?.message}
    </p>
  );
}

/** The hourly cost the organization gave the host, or "none". */
export function HourlyCost({ host }: { host: Host }) {
  return host.hourly_cost_eur === null || host.hourly_cost_eur === undefined ? <span className="muted">none</span> : <Money value={host.hourly_cost_eur} per="h" />;
}

/** When the last verification ran ("failed" when it did not reach the host), its message as a tooltip. */
export function LastCheck({ host }: { host: Host }) {
  const check = host.last_check;
  if (!check) return <span className="muted">never</span>;
  return (
    <span className="row-actions" title={check.message}>
      {check.ok ? null : <Badge tone="bad">failed</Badge>}
      <DateText value={check.at} />
    </span>
  );
}

export function HostsPage() {
  const [showRemoved, setShowRemoved] = useState(false);
  const hosts = useHosts(showRemoved);
  const canManage = useCan('ManageHosts');
  const action = useHostAction();
  const [registering, setRegistering] = useState(false);

  const columns = useMemo<ColumnDef<Host>[]>(() => {
    const cols: ColumnDef<Host>[] = [
      { id: 'label', accessorKey: 'label', header: 'Label', size: 100, cell: ({ row }) => <Link to={`/hosts/${row.original.id}`}>{row.original.label}</Link> },
      {
        id: 'address',
        accessorFn: (h) => `${h.ssh_user}@${h.address}:${h.ssh_port}`,
        header: 'SSH address',
        size: 185,
        cell: ({ getValue }) => <span title={getValue<string>()}>{getValue<string>()}</span>,
      },
      { id: 'pool', accessorKey: 'pool', header: 'Pool', size: 100 },
      {
        id: 'gpus',
        accessorKey: 'gpu_count',
        header: 'GPUs',
        size: 200,
        cell: ({ row }) => <span title={row.original.gpus_detected ? 'read with nvidia-smi' : 'declared'}>{gpusText(row.original)}</span>,
      },
      { id: 'in_use', accessorFn: (h) => h.seats.length, header: 'In use', size: 110, cell: ({ row }) => gpuUseText(row.original) },
      { id: 'hourly_cost_eur', accessorFn: (h) => Number(h.hourly_cost_eur ?? 0), header: 'Hourly cost', size: 110, meta: NUMERIC, cell: ({ row }) => <HourlyCost host={row.original} /> },
      { id: 'status', accessorKey: 'status', header: 'Status', size: 110, cell: ({ row }) => <StatusBadge kind="host" status={row.original.status} /> },
      { id: 'last_check', accessorFn: (h) => h.last_check?.at ?? '', header: 'Last check', size: 140, cell: ({ row }) => <LastCheck host={row.original} /> },
      { id: 'created_at', accessorKey: 'created_at', header: 'Registered', size: 150, cell: ({ getValue }) => <DateText value={getValue<string>()} /> },
    ];
    if (canManage) {
      cols.push({
        id: 'actions',
        header: 'Actions',
        size: 230,
        enableSorting: false,
        cell: ({ row }) => <HostActionButtons host={row.original} action={action} small />,
      });
    }
    return cols;
  }, [canManage, action]);

  return (
    <>
      <PageHeader title="Hosts">
        {canManage ? (
          <button type="button" className="button button-primary" onClick={() => setRegistering(true)}>
            Register a host
          </button>
        ) : null}
      </PageHeader>
      <p className="muted">Your own GPU servers, reached over SSH with the organization’s key: deploy on them with the provider “ssh”, a pool as the zone.</p>
      <ErrorMessage error={action.error} />
      <VerificationOutcome action={action} />
      {hosts.isPending ? (
        <Loading />
      ) : hosts.isError ? (
        <ErrorMessage error={hosts.error} />
      ) : (
        <DataTable
          id="hosts"
          label="Hosts"
          columns={columns}
          data={hosts.data}
          getRowId={(h) => h.id}
          defaults={{ sorting: [{ id: 'created_at', desc: true }], columnVisibility: { created_at: false } }}
          empty={canManage ? 'No host yet: register one.' : 'No host yet.'}
          toolbar={
            <label className="checkbox">
              <input type="checkbox" checked={showRemoved} onChange={(e) => setShowRemoved(e.target.checked)} /> Show removed
            </label>
          }
        />
      )}
      {canManage ? <RegisterHostDialog open={registering} onClose={() => setRegistering(false)} /> : null}
    </>
  );
}
