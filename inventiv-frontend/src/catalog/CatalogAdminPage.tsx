// Catalog settings for platform admins: the global catalog every
// organization activates from. Models can be added, edited and switched
// off, and marked gated on Hugging Face (deploying them then needs the
// organization's Hugging Face token); instance types get a price (exact decimal) and an availability
// switch. Providers and zones come from the providers' catalogs: listed here,
// switched on per organization on the Catalog page.
import { useMemo, useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { api } from '../api/client';
import type { CreateModel, InstanceType, Model, UpdateInstanceType, UpdateModel } from '../api/types';
import { useMe } from '../auth/useMe';
import { DataTable } from '../components/DataTable';
import { Card, ErrorMessage, Field, Loading, PageHeader } from '../components/ui';
import { useProviders, useZones } from '../instances/api';
import { useCatalogSync } from '../providers/api';
import type { SyncReport } from '../api/types';

/** A price as the API takes it: digits, at most 4 decimals. */
export function isPrice(value: string): boolean {
  return /^\d{1,8}(\.\d{1,4})?$/.test(value.trim());
}

function useCatalogMutation<V>(fn: (v: V) => Promise<unknown>, key: string) {
  const client = useQueryClient();
  return useMutation({ mutationFn: fn, onSuccess: () => client.invalidateQueries({ queryKey: [key] }) });
}

function PriceCell({ type, save, busy }: { type: InstanceType; save: (price: string) => void; busy: boolean }) {
  const [value, setValue] = useState(type.price_eur_per_hour);
  const valid = isPrice(value);
  return (
    <form
      className="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (valid) save(value.trim());
      }}
    >
      <input aria-label={`Price per hour of ${type.code}`} aria-invalid={!valid} value={value} onChange={(e) => setValue(e.target.value)} size={9} />
      <button type="submit" className="button" disabled={busy || !valid || value.trim() === type.price_eur_per_hour}>
        Save
      </button>
    </form>
  );
}

function NewModelForm() {
  const create = useCatalogMutation((body: CreateModel) => api<Model>('/models', { method: 'POST', body }), 'models');
  const [form, setForm] = useState({ hf_id: '', display_name: '', required_vram_gb: '', context_length: '', recommended_data_volume_gb: '' });
  const [gated, setGated] = useState(false);
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      {
        hf_id: form.hf_id,
        display_name: form.display_name,
        required_vram_gb: Number(form.required_vram_gb),
        context_length: Number(form.context_length),
        recommended_data_volume_gb: Number(form.recommended_data_volume_gb),
        gated,
      },
      {
        onSuccess: () => {
          setForm({ hf_id: '', display_name: '', required_vram_gb: '', context_length: '', recommended_data_volume_gb: '' });
          setGated(false);
        },
      },
    );
  };
  return (
    <form className="form-row" aria-label="Add a model" onSubmit={submit}>
      <Field label="Hugging Face id" required value={form.hf_id} onChange={set('hf_id')} placeholder="Qwen/Qwen2.5-7B-Instruct" />
      <Field label="Display name" required value={form.display_name} onChange={set('display_name')} />
      <Field label="VRAM needed (GB)" required type="number" min={1} value={form.required_vram_gb} onChange={set('required_vram_gb')} />
      <Field label="Context length" required type="number" min={1} value={form.context_length} onChange={set('context_length')} />
      <Field label="Data volume (GB)" required type="number" min={1} value={form.recommended_data_volume_gb} onChange={set('recommended_data_volume_gb')} />
      <label className="checkbox">
        <input type="checkbox" checked={gated} onChange={(e) => setGated(e.target.checked)} />
        Gated on Hugging Face
      </label>
      <button type="submit" className="button button-primary" disabled={create.isPending}>
        Add the model
      </button>
      <ErrorMessage error={create.error} />
    </form>
  );
}

function SyncResult({ report }: { report: SyncReport }) {
  const list = (codes: string[]) => (codes.length ? codes.join(', ') : 'none');
  return (
    <dl className="facts" data-testid="sync-result">
      <dt>Zones read</dt>
      <dd>{report.zones}</dd>
      <dt>Added</dt>
      <dd>{list(report.added)}</dd>
      <dt>Updated</dt>
      <dd>{list(report.updated)}</dd>
      <dt>Kept as edited</dt>
      <dd>{list(report.kept_edited)}</dd>
    </dl>
  );
}

/** Scaleway's GPU server types, prices and availability per zone, read with the current organization's credentials. */
function CatalogSyncCard() {
  const sync = useCatalogSync('scaleway');
  return (
    <Card
      title="Sync from Scaleway"
      actions={
        <button type="button" className="button" disabled={sync.isPending} onClick={() => sync.mutate()}>
          {sync.isPending ? 'Syncing…' : 'Sync from Scaleway'}
        </button>
      }
    >
      <p className="muted">
        Adds new GPU server types, refreshes sizes and prices (except those edited here) and the availability per zone. Uses the current
        organization's Scaleway credentials.
      </p>
      <ErrorMessage error={sync.error} />
      {sync.data ? <SyncResult report={sync.data} /> : null}
    </Card>
  );
}

export function CatalogAdminPage() {
  const { data: me } = useMe();
  const providers = useProviders();
  const zones = useZones();
  const types = useQuery({ queryKey: ['instance_types', null, null], queryFn: () => api<InstanceType[]>('/instance_types') });
  const models = useQuery({ queryKey: ['models'], queryFn: () => api<Model[]>('/models') });
  const updateModel = useCatalogMutation(({ id, body }: { id: string; body: UpdateModel }) => api<Model>(`/models/${id}`, { method: 'PATCH', body }), 'models');
  const updateType = useCatalogMutation(
    ({ id, body }: { id: string; body: UpdateInstanceType }) => api<InstanceType>(`/instance_types/${id}`, { method: 'PATCH', body }),
    'instance_types',
  );

  const modelCols = useMemo<ColumnDef<Model>[]>(
    () => [
      { id: 'display_name', accessorKey: 'display_name', header: 'Model', size: 220 },
      { id: 'hf_id', accessorKey: 'hf_id', header: 'Hugging Face id', size: 260 },
      { id: 'required_vram_gb', accessorKey: 'required_vram_gb', header: 'VRAM (GB)', size: 110 },
      { id: 'context_length', accessorKey: 'context_length', header: 'Context', size: 100 },
      {
        id: 'gated',
        accessorKey: 'gated',
        header: 'Gated',
        size: 90,
        cell: ({ row }) => (
          <input
            type="checkbox"
            role="switch"
            aria-label={`${row.original.display_name} gated on Hugging Face`}
            checked={row.original.gated}
            disabled={updateModel.isPending}
            onChange={(e) => updateModel.mutate({ id: row.original.id, body: { gated: e.target.checked } })}
          />
        ),
      },
      {
        id: 'active',
        accessorKey: 'active',
        header: 'Offered',
        size: 100,
        cell: ({ row }) => (
          <input
            type="checkbox"
            role="switch"
            aria-label={`${row.original.display_name} offered`}
            checked={row.original.active}
            disabled={updateModel.isPending}
            onChange={(e) => updateModel.mutate({ id: row.original.id, body: { active: e.target.checked } })}
          />
        ),
      },
    ],
    [updateModel],
  );
  const typeCols = useMemo<ColumnDef<InstanceType>[]>(
    () => [
      { id: 'code', accessorKey: 'code', header: 'Type', size: 160 },
      { id: 'provider', accessorKey: 'provider', header: 'Provider', size: 100 },
      { id: 'gpus', accessorFn: (t) => t.total_vram_gb, header: 'GPUs', size: 130, cell: ({ row }) => `${row.original.gpu_count} × ${row.original.vram_per_gpu_gb} GB` },
      {
        id: 'price',
        accessorFn: (t) => Number(t.price_eur_per_hour),
        header: 'EUR per hour',
        size: 190,
        cell: ({ row }) => (
          <PriceCell
            key={row.original.price_eur_per_hour}
            type={row.original}
            busy={updateType.isPending}
            save={(price) => updateType.mutate({ id: row.original.id, body: { price_eur_per_hour: price } })}
          />
        ),
      },
      {
        id: 'active',
        accessorKey: 'active',
        header: 'Offered',
        size: 100,
        cell: ({ row }) => (
          <input
            type="checkbox"
            role="switch"
            aria-label={`${row.original.code} offered`}
            checked={row.original.active}
            disabled={updateType.isPending}
            onChange={(e) => updateType.mutate({ id: row.original.id, body: { active: e.target.checked } })}
          />
        ),
      },
    ],
    [updateType],
  );

  if (!me?.user.is_platform_admin) {
    return (
      <>
        <PageHeader title="Catalog settings" />
        <p>Only platform admins edit the global catalog.</p>
      </>
    );
  }
  return (
    <>
      <PageHeader title="Catalog settings" />
      <p className="muted">The global catalog, for every organization. Organizations still switch items on for themselves on the Catalog page.</p>
      <ErrorMessage error={updateModel.error ?? updateType.error} />
      <Card title="Providers and zones">
        {providers.isPending || zones.isPending ? <Loading /> : providers.isError ? <ErrorMessage error={providers.error} /> : zones.isError ? <ErrorMessage error={zones.error} /> : (
          <ul className="plain-list">
            {providers.data.map((p) => (
              <li key={p.code}>
                <strong>{p.name}</strong> ({p.code}{p.active ? '' : ', withdrawn'}):{' '}
                {zones.data.filter((z) => z.provider === p.code).map((z) => z.code).join(', ') || 'no zone'}
              </li>
            ))}
          </ul>
        )}
      </Card>
      <CatalogSyncCard />
      <Card title="Instance types">
        {types.isPending ? <Loading /> : types.isError ? <ErrorMessage error={types.error} /> : (
          <DataTable id="catalog-admin-types" label="Instance types settings" columns={typeCols} data={types.data} getRowId={(t) => t.id} />
        )}
      </Card>
      <Card title="Models">
        <NewModelForm />
        {models.isPending ? <Loading /> : models.isError ? <ErrorMessage error={models.error} /> : (
          <DataTable id="catalog-admin-models" label="Models settings" columns={modelCols} data={models.data} getRowId={(m) => m.id} />
        )}
      </Card>
    </>
  );
}
