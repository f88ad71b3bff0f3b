// Observability of one instance (GET /instances/{id}/metrics): GPU
// utilisation and memory per GPU, CPU and memory of the machine (from the
// worker's heartbeats), and requests and tokens per minute (from the meter).
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../api/client';
import type { InstanceMetrics } from '../api/types';
import { seriesBy, type Point } from '../components/chart';
import { LineChart, type Series } from '../components/LineChart';
import { Card, ErrorMessage, Loading, SelectField } from '../components/ui';

const WINDOWS = [15, 60, 360, 1440];

function toSeries(map: Map<string, Point[]>): Series[] {
  return [...map.entries()].map(([name, points]) => ({ name, points }));
}

const at = (iso: string) => new Date(iso).getTime();

export function MetricsPanel({ instanceId }: { instanceId: string }) {
  const [minutes, setMinutes] = useState(60);
  const metrics = useQuery({
    queryKey: ['instance', instanceId, 'metrics', minutes],
    queryFn: () => api<InstanceMetrics>(`/instances/${instanceId}/metrics`, { query: { minutes } }),
    refetchInterval: 15_000,
  });
  const windowSelect = (
    <SelectField label="Window" value={minutes} onChange={(e) => setMinutes(Number(e.target.value))}>
      {WINDOWS.map((m) => (
        <option key={m} value={m}>
          {m < 60 ? `${m} minutes` : `${m / 60} hour${m > 60 ? 's' : ''}`}
        </option>
      ))}
    </SelectField>
  );
  if (metrics.isPending) return <Card title="Observability" actions={windowSelect}><Loading /></Card>;
  if (metrics.isError) return <Card title="Observability" actions={windowSelect}><ErrorMessage error={metrics.error} /></Card>;
  const m = metrics.data;
  const gpuKey = (g: { gpu_index: number }) => `GPU ${g.gpu_index}`;
  const gpuUtil = toSeries(seriesBy(m.gpu, gpuKey, (g) => ({ t: at(g.at), v: g.utilization_pct })));
  const gpuMem = toSeries(seriesBy(m.gpu, gpuKey, (g) => ({ t: at(g.at), v: g.memory_used_mib / 1024 })));
  const cpu = [{ name: 'CPU', points: m.system.map((s) => ({ t: at(s.at), v: s.cpu_pct })) }];
  const mem = [{ name: 'Memory', points: m.system.map((s) => ({ t: at(s.at), v: s.memory_used_mib / 1024 })) }];
  const memTotal = m.system.at(-1)?.memory_total_mib;
  const gpuMemTotal = Math.max(0, ...m.gpu.map((g) => g.memory_total_mib));
  const requests = [
    { name: 'Requests', points: m.requests.map((r) => ({ t: at(r.minute), v: r.requests })) },
    { name: 'Errors', points: m.requests.map((r) => ({ t: at(r.minute), v: r.errors })) },
  ];
  const tokens = [
    { name: 'Prompt', points: m.requests.map((r) => ({ t: at(r.minute), v: r.prompt_tokens })) },
    { name: 'Completion', points: m.requests.map((r) => ({ t: at(r.minute), v: r.completion_tokens })) },
  ];
  return (
    <Card title="Observability" actions={windowSelect}>
      <div className="charts">
        <LineChart title="GPU utilisation" series={gpuUtil} unit="%" max={100} />
        <LineChart title="GPU memory" series={gpuMem} unit="GiB" max={gpuMemTotal > 0 ? gpuMemTotal / 1024 : undefined} />
        <LineChart title="CPU" series={cpu} unit="%" max={100} />
        <LineChart title="Memory" series={mem} unit="GiB" max={memTotal ? memTotal / 1024 : undefined} />
        <LineChart title="Requests per minute" series={requests} unit="req" />
        <LineChart title="Tokens per minute" series={tokens} unit="tokens" />
      </div>
    </Card>
  );
}
