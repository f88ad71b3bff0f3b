// FinOps of the current organization (owners and managers): the burn rate
// of what runs now and the month to date, GPU cost and token series with
// their CSV exports, and cost recovery per offering. Amounts are shown as
// the API's decimal strings (components/format.ts), never recomputed in floats.
import { useMemo, useState } from 'react';
import type { ColumnDef } from '@tanstack/react-table';
import { withQuery } from '../api/client';
import type { Recovery, RunningInstance } from '../api/types';
import { DataTable } from '../components/DataTable';
import { LineChart } from '../components/LineChart';
import { Card, DateText, Empty, ErrorMessage, Loading, Money, PageHeader, SelectField } from '../components/ui';
import { perMillion } from '../offerings/prices';
import { Margin } from './Margin';
import { useCostRecovery, useCostSeries, useCurrentCost, useUsageSeries } from './api';
import { pivot, seriesQuery, type Bucket, type CostGroup } from './money';

const BUCKETS: Record<Bucket, string> = { minute: 'Minute (last 3 hours)', hour: 'Hour (last 2 days)', day: 'Day (last 30 days)' };
const COST_GROUPS: Record<CostGroup, string> = {
  none: 'Nothing (total)',
  provider: 'Provider',
  instance_type: 'Instance type',
  model: 'Model',
  instance: 'Instance',
};
type UsageGroup = 'model' | 'api_key' | 'user';
const USAGE_GROUPS: Record<UsageGroup, string> = { model: 'Model', api_key: 'API key', user: 'User' };

export function FinOpsPage() {
  const [bucket, setBucket] = useState<Bucket>('hour');
  const [costGroup, setCostGroup] = useState<CostGroup>('model');
  const [usageGroup, setUsageGroup] = useState<UsageGroup>('model');
  // Token series have no minute buckets: the closest is the hour.
  const usageBucket: Bucket = bucket === 'minute' ? 'hour' : bucket;
  const costQuery = useMemo(() => seriesQuery(bucket, costGroup), [bucket, costGroup]);
  const usageQuery = useMemo(() => seriesQuery(usageBucket, usageGroup), [usageBucket, usageGroup]);
  return (
    <>
      <PageHeader title="FinOps" />
      <BurnRate />
      <div className="filters">
        <SelectField label="Bucket" value={bucket} onChange={(e) => setBucket(e.target.value as Bucket)}>
          {(Object.keys(BUCKETS) as Bucket[]).map((b) => (
            <option key={b} value={b}>
              {BUCKETS[b]}
            </option>
          ))}
        </SelectField>
        <SelectField label="Cost by" value={costGroup} onChange={(e) => setCostGroup(e.target.value as CostGroup)}>
          {(Object.keys(COST_GROUPS) as CostGroup[]).map((g) => (
            <option key={g} value={g}>
              {COST_GROUPS[g]}
            </option>
          ))}
        </SelectField>
        <SelectField label="Tokens by" value={usageGroup} onChange={(e) => setUsageGroup(e.target.value as UsageGroup)}>
          {(Object.keys(USAGE_GROUPS) as UsageGroup[]).map((g) => (
            <option key={g} value={g}>
              {USAGE_GROUPS[g]}
            </option>
          ))}
        </SelectField>
      </div>
      <div className="grid">
        <CostSeries query={costQuery} />
        <TokenSeries query={usageQuery} />
      </div>
      <CostRecovery />
    </>
  );
}

function BurnRate() {
  const current = useCurrentCost();
  const columns = useMemo<ColumnDef<RunningInstance>[]>(
    () => [
      { id: 'model', accessorKey: 'model_id', header: 'Model', size: 240 },
      { id: 'provider', accessorKey: 'provider', header: 'Provider', size: 110 },
      { id: 'type', accessorKey: 'instance_type', header: 'Instance type', size: 160 },
      { id: 'price', accessorKey: 'price_eur_per_hour', header: 'EUR / hour', size: 120, cell: ({ row }) => <Money value={row.original.price_eur_per_hour} /> },
      { id: 'started', accessorKey: 'started_at', header: 'Started', size: 190, cell: ({ row }) => <DateText value={row.original.started_at} /> },
    ],
    [],
  );
  if (current.isPending) return <Loading />;
  if (current.isError) return <ErrorMessage error={current.error} />;
  const c = current.data;
  const rates: [string, string][] = [
    ['Per minute', c.per_minute_eur],
    ['Per hour', c.per_hour_eur],
    ['Per day', c.per_day_eur],
    ['Per 30 days', c.per_30_days_eur],
    ['Per 365 days', c.per_365_days_eur],
    ['Month to date', c.month_to_date_eur],
  ];
  return (
    <Card title="Burn rate">
      <p className="muted">
        What {c.running_instances === 1 ? 'the running instance costs at its' : `the ${c.running_instances} running instances cost at their`} hourly
        prices; the month to date is what was spent since the 1st (UTC).
      </p>
      <dl className="stats money-stats" aria-label="Burn rate">
        {rates.map(([label, amount]) => (
          <div key={label}>
            <dt>{label}</dt>
            <dd><Money value={amount} /></dd>
          </div>
        ))}
      </dl>
      {c.instances.length > 0 ? (
        <DataTable id="finops-running" label="Running instances" columns={columns} data={c.instances} getRowId={(i) => i.instance_id} />
      ) : null}
    </Card>
  );
}

function CsvLink({ path, query, name }: { path: string; query: Record<string, string>; name: string }) {
  return (
    <a className="button" href={withQuery(path, { ...query, format: 'csv' })} download={`${name}.csv`}>
      Download {name} CSV
    </a>
  );
}

function CostSeries({ query }: { query: Record<string, string> }) {
  const series = useCostSeries(query);
  const lines = useMemo(() => pivot(series.data ?? [], (p) => Number(p.cost_eur)), [series.data]);
  return (
    <Card title="GPU cost" actions={<CsvLink path="/finops/cost/series" query={query} name="cost" />}>
      {series.isPending ? <Loading /> : series.isError ? <ErrorMessage error={series.error} /> : (
        <LineChart title={`Cost per ${query.bucket}`} series={lines} unit="EUR" />
      )}
    </Card>
  );
}

function TokenSeries({ query }: { query: Record<string, string> }) {
  const series = useUsageSeries(query);
  const lines = useMemo(() => pivot(series.data ?? [], (p) => p.prompt_tokens + p.completion_tokens), [series.data]);
  return (
    <Card title="Tokens through /v1" actions={<CsvLink path="/finops/usage/series" query={query} name="tokens" />}>
      {series.isPending ? <Loading /> : series.isError ? <ErrorMessage error={series.error} /> : (
        <LineChart title={`Tokens per ${query.bucket}`} series={lines} unit="tokens" />
      )}
    </Card>
  );
}

function CostRecovery() {
  const recovery = useCostRecovery();
  const columns = useMemo<ColumnDef<Recovery>[]>(
    () => [
      { id: 'address', accessorKey: 'address', header: 'Offering', size: 260 },
      { id: 'gpu', accessorKey: 'gpu_cost_eur', header: 'GPU cost', size: 140, cell: ({ row }) => <Money value={row.original.gpu_cost_eur} /> },
      { id: 'revenue', accessorKey: 'revenue_eur', header: 'Revenue', size: 140, cell: ({ row }) => <Money value={row.original.revenue_eur} /> },
      { id: 'margin', accessorKey: 'margin_eur', header: 'Margin', size: 140, cell: ({ row }) => <Margin value={row.original.margin_eur} /> },
      { id: 'shared', accessorKey: 'shared_tokens', header: 'Shared tokens', size: 130 },
      { id: 'total', accessorKey: 'total_tokens', header: 'All tokens', size: 120 },
      {
        id: 'break_even',
        accessorKey: 'break_even_eur_per_1k',
        header: 'Break-even / 1k (1M) tokens',
        size: 220,
        cell: ({ row }) => {
          const perK = row.original.break_even_eur_per_1k;
          return perK ? (
            <>
              <Money value={perK} /> <span className="muted">(<Money value={perMillion(perK)} />)</span>
            </>
          ) : (
            <Money value={perK} />
          );
        },
      },
    ],
    [],
  );
  return (
    <Card title="Cost recovery per offering">
      {recovery.isPending ? <Loading /> : recovery.isError ? <ErrorMessage error={recovery.error} /> : recovery.data.length === 0 ? (
        <Empty>No offering yet: publish a model on the Offerings page.</Empty>
      ) : (
        <DataTable id="finops-recovery" label="Cost recovery" columns={columns} data={recovery.data} getRowId={(r) => r.offering_id} />
      )}
    </Card>
  );
}
