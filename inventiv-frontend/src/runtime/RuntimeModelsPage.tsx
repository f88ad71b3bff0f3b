// Runtime models (GET /runtime/models): per model, the instances the
// organization runs (alive, ready, failed), their GPUs and VRAM, and the
// requests, failures and tokens of the chosen window.
import { useMemo, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { api } from '../api/client';
import type { RuntimeModel } from '../api/types';
import { ConnectBox } from '../components/ConnectBox';
import { DataTable } from '../components/DataTable';
import { Card, Empty, ErrorMessage, Loading, PageHeader, SelectField } from '../components/ui';

const WINDOWS = [1, 24, 168, 720];

/** Failed requests as a share of all, e.g. "12.5 %" ("—" without traffic). */
export function failureRate(m: Pick<RuntimeModel, 'requests' | 'failed_requests'>): string {
  if (m.requests === 0) return '—';
  return `${Math.round((m.failed_requests / m.requests) * 1000) / 10} %`;
}

/** The connect box of one of the models served now. */
function ConnectModel({ models }: { models: string[] }) {
  const [chosen, setChosen] = useState(models[0] ?? '');
  const model = models.includes(chosen) ? chosen : (models[0] ?? '');
  return (
    <>
      <div className="filters">
        <SelectField label="Connect to" value={model} onChange={(e) => setChosen(e.target.value)}>
          {models.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </SelectField>
      </div>
      <ConnectBox model={model} />
    </>
  );
}

export function RuntimeModelsPage() {
  const [hours, setHours] = useState(24);
  const runtime = useQuery({
    queryKey: ['runtime-models', hours],
    queryFn: () => api<RuntimeModel[]>('/runtime/models', { query: { hours } }),
    refetchInterval: 30_000,
  });
  const columns = useMemo<ColumnDef<RuntimeModel>[]>(
    () => [
      { id: 'model', accessorKey: 'model', header: 'Model', size: 240 },
      { id: 'instances', accessorKey: 'instances', header: 'Instances', size: 115 },
      { id: 'ready', accessorKey: 'ready', header: 'Ready', size: 90 },
      { id: 'failed_instances', accessorKey: 'failed_instances', header: 'Failed instances', size: 160 },
      { id: 'gpus', accessorKey: 'gpus', header: 'GPUs', size: 80 },
      { id: 'vram_gb', accessorKey: 'vram_gb', header: 'VRAM (GB)', size: 120 },
      { id: 'requests', accessorKey: 'requests', header: 'Requests', size: 115 },
      { id: 'failed_requests', accessorKey: 'failed_requests', header: 'Failed requests', size: 160, cell: ({ row }) => `${row.original.failed_requests} (${failureRate(row.original)})` },
      { id: 'tokens', accessorKey: 'tokens', header: 'Tokens', size: 110 },
    ],
    [],
  );
  return (
    <>
      <PageHeader title="Runtime models" />
      <div className="filters">
        <SelectField label="Traffic of the last" value={hours} onChange={(e) => setHours(Number(e.target.value))}>
          {WINDOWS.map((h) => (
            <option key={h} value={h}>
              {h === 1 ? 'hour' : h < 168 ? `${h} hours` : `${h / 24} days`}
            </option>
          ))}
        </SelectField>
      </div>
      <Card title="Per model">
        {runtime.isPending ? <Loading /> : runtime.isError ? <ErrorMessage error={runtime.error} /> : runtime.data.length === 0 ? (
          <Empty>No instance and no traffic yet.</Empty>
        ) : (
          <DataTable id="runtime-models" label="Runtime models" columns={columns} data={runtime.data} getRowId={(m) => m.model} />
        )}
      </Card>
      {runtime.data?.some((m) => m.ready > 0) ? <ConnectModel models={runtime.data.filter((m) => m.ready > 0).map((m) => m.model)} /> : null}
    </>
  );
}
