// The catalog and the organization's activations: an item is usable only
// when switched on technically (owners, admins) AND economically (owners,
// managers).
import { useMemo } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { api } from '../api/client';
import type { Activation, InstanceType, Model, Provider, SetActivation, Zone } from '../api/types';
import { can } from '../auth/permissions';
import { useMe } from '../auth/useMe';
import { DataTable } from '../components/DataTable';
import { Card, ErrorMessage, Loading, Money, PageHeader } from '../components/ui';
import { useProviders, useZones } from '../instances/api';

type Kind = 'provider' | 'zone' | 'instance_type' | 'model';

const QUERY_KEYS: Record<Kind, readonly unknown[]> = {
  provider: ['providers'],
  zone: ['zones'],
  instance_type: ['instance_types'],
  model: ['models'],
};

function useSetActivation() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ kind, itemId, body }: { kind: Kind; itemId: string; body: SetActivation }) =>
      api<Activation>(`/organizations/current/activations/${kind}/${encodeURIComponent(itemId)}`, { method: 'PUT', body }),
    onSuccess: (_a, { kind }) => client.invalidateQueries({ queryKey: QUERY_KEYS[kind] }),
  });
}

interface Switches {
  technical: boolean;
  economic: boolean;
}

function activationColumns<T extends { activation: Activation }>(
  kind: Kind,
  itemId: (row: T) => string,
  itemName: (row: T) => string,
  allowed: Switches,
  set: ReturnType<typeof useSetActivation>,
): ColumnDef<T>[] {
  const toggle = (side: keyof Switches) => ({
    id: side,
    header: side === 'technical' ? 'Technical' : 'Economic',
    size: 110,
    accessorFn: (row: T) => row.activation[side],
    cell: ({ row }: { row: { original: T } }) => (
      <input
        type="checkbox"
        role="switch"
        aria-label={`${side === 'technical' ? 'Technical' : 'Economic'} activation of ${itemName(row.original)}`}
        checked={row.original.activation[side]}
        disabled={!allowed[side] || set.isPending}
        onChange={(e) => set.mutate({ kind, itemId: itemId(row.original), body: { [side]: e.target.checked } })}
      />
    ),
  });
  return [
    toggle('technical'),
    toggle('economic'),
    {
      id: 'operational',
      header: 'Usable',
      size: 110,
      accessorFn: (row: T) => row.activation.operational,
      cell: ({ row }) => (row.original.activation.operational ? <span className="badge badge-ok">yes</span> : <span className="badge badge-off">no</span>),
    },
  ];
}

export function CatalogPage() {
  const { data: me } = useMe();
  const role = me?.current_organization.role;
  const allowed = { technical: can(role, 'ActivateTechnical'), economic: can(role, 'ActivateEconomic') };
  const set = useSetActivation();
  const providers = useProviders();
  const zones = useZones();
  const types = useQuery({ queryKey: ['instance_types', null, null], queryFn: () => api<InstanceType[]>('/instance_types') });
  const models = useQuery({ queryKey: ['models'], queryFn: () => api<Model[]>('/models') });

  const providerCols = useMemo<ColumnDef<Provider>[]>(
    () => [
      { id: 'name', accessorKey: 'name', header: 'Provider', size: 220 },
      { id: 'code', accessorKey: 'code', header: 'Code', size: 110 },
      ...activationColumns<Provider>('provider', (p) => p.code, (p) => p.name, allowed, set),
    ],
    [allowed.technical, allowed.economic, set],
  );
  const zoneCols = useMemo<ColumnDef<Zone>[]>(
    () => [
      { id: 'name', accessorKey: 'name', header: 'Zone', size: 180 },
      { id: 'code', accessorKey: 'code', header: 'Code', size: 130 },
      { id: 'provider', accessorKey: 'provider', header: 'Provider', size: 100 },
      { id: 'region', accessorKey: 'region', header: 'Region', size: 100 },
      ...activationColumns<Zone>('zone', (z) => z.id, (z) => z.name, allowed, set),
    ],
    [allowed.technical, allowed.economic, set],
  );
  const typeCols = useMemo<ColumnDef<InstanceType>[]>(
    () => [
      { id: 'code', accessorKey: 'code', header: 'Type', size: 160 },
      { id: 'provider', accessorKey: 'provider', header: 'Provider', size: 100 },
      { id: 'gpus', accessorFn: (t) => t.total_vram_gb, header: 'GPUs', size: 130, cell: ({ row }) => `${row.original.gpu_count} × ${row.original.vram_per_gpu_gb} GB` },
      { id: 'price', accessorFn: (t) => Number(t.price_eur_per_hour), header: 'Price', size: 110, cell: ({ row }) => <Money value={row.original.price_eur_per_hour} per="h" /> },
      { id: 'zones', accessorFn: (t) => t.zones.join(', '), header: 'Zones', size: 200 },
      ...activationColumns<InstanceType>('instance_type', (t) => t.id, (t) => t.code, allowed, set),
    ],
    [allowed.technical, allowed.economic, set],
  );
  const modelCols = useMemo<ColumnDef<Model>[]>(
    () => [
      { id: 'display_name', accessorKey: 'display_name', header: 'Model', size: 220 },
      { id: 'hf_id', accessorKey: 'hf_id', header: 'Hugging Face id', size: 260 },
      { id: 'kind', accessorKey: 'kind', header: 'Kind', size: 100 },
      { id: 'required_vram_gb', accessorKey: 'required_vram_gb', header: 'VRAM (GB)', size: 120 },
      ...activationColumns<Model>('model', (m) => m.id, (m) => m.display_name, allowed, set),
    ],
    [allowed.technical, allowed.economic, set],
  );

  if (!allowed.technical && !allowed.economic) {
    return (
      <>
        <PageHeader title="Catalog" />
        <p>Your role ({role}) does not activate catalog items.</p>
      </>
    );
  }
  return (
    <>
      <PageHeader title="Catalog" />
      <p className="muted">
        You switch the {[allowed.technical && 'technical', allowed.economic && 'economic'].filter(Boolean).join(' and ')} side. An item can be deployed or
        used only when both sides are on.
      </p>
      <ErrorMessage error={set.error} />
      <Card title="Providers">
        {providers.isPending ? <Loading /> : providers.isError ? <ErrorMessage error={providers.error} /> : (
          <DataTable id="catalog-providers" label="Providers" columns={providerCols} data={providers.data} getRowId={(p) => p.code} />
        )}
      </Card>
      <Card title="Zones">
        {zones.isPending ? <Loading /> : zones.isError ? <ErrorMessage error={zones.error} /> : (
          <DataTable id="catalog-zones" label="Zones" columns={zoneCols} data={zones.data} getRowId={(z) => z.id} />
        )}
      </Card>
      <Card title="Instance types">
        {types.isPending ? <Loading /> : types.isError ? <ErrorMessage error={types.error} /> : (
          <DataTable id="catalog-instance-types" label="Instance types" columns={typeCols} data={types.data} getRowId={(t) => t.id} />
        )}
      </Card>
      <Card title="Models">
        {models.isPending ? <Loading /> : models.isError ? <ErrorMessage error={models.error} /> : (
          <DataTable id="catalog-models" label="Models" columns={modelCols} data={models.data} getRowId={(m) => m.id} />
        )}
      </Card>
    </>
  );
}
