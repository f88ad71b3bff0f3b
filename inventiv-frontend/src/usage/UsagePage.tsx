// The organization's token usage through /v1 (GET /usage): totals per
// model, API key or day over a period, and the same as a CSV download.
import { useMemo, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { api, withQuery } from '../api/client';
import type { UsageLine } from '../api/types';
import { DataTable, NUMERIC } from '../components/DataTable';
import { formatCount } from '../components/format';
import { Card, Empty, ErrorMessage, Loading, PageHeader, SelectField } from '../components/ui';
import { useApiKeys } from '../keys/api';

export type GroupBy = 'model' | 'api_key' | 'day';

const GROUP_LABELS: Record<GroupBy, string> = { model: 'Model', api_key: 'API key', day: 'Day (UTC)' };
const PERIODS = [1, 7, 30, 90];
const count = ({ getValue }: { getValue: () => unknown }) => formatCount(getValue() as number);

/** The query of GET /usage for the last `days` days, ending at `now`. */
export function usageQuery(groupBy: GroupBy, days: number, now = new Date()) {
  return { group_by: groupBy, from: new Date(now.getTime() - days * 86_400_000).toISOString(), to: now.toISOString() };
}

/** The sums of the lines, for the table's last row. */
export function usageTotals(lines: UsageLine[]) {
  return lines.reduce(
    (t, l) => ({
      requests: t.requests + l.requests,
      prompt_tokens: t.prompt_tokens + l.prompt_tokens,
      completion_tokens: t.completion_tokens + l.completion_tokens,
      cached_prompt_tokens: t.cached_prompt_tokens + l.cached_prompt_tokens,
      reasoning_tokens: t.reasoning_tokens + l.reasoning_tokens,
      errors: t.errors + l.errors,
    }),
    { requests: 0, prompt_tokens: 0, completion_tokens: 0, cached_prompt_tokens: 0, reasoning_tokens: 0, errors: 0 },
  );
}

export function UsagePage() {
  const [groupBy, setGroupBy] = useState<GroupBy>('model');
  const [days, setDays] = useState(30);
  // One period per choice: the same query key until the user changes it.
  const query = useMemo(() => usageQuery(groupBy, days), [groupBy, days]);
  const usage = useQuery({ queryKey: ['usage', query], queryFn: () => api<UsageLine[]>('/usage', { query }) });
  const keys = useApiKeys();
  const keyNames = useMemo(() => new Map((keys.data ?? []).map((k) => [k.id, k.name])), [keys.data]);
  const columns = useMemo<ColumnDef<UsageLine>[]>(
    () => [
      {
        id: 'group',
        accessorKey: 'group',
        header: GROUP_LABELS[groupBy],
        size: 280,
        cell: ({ row }) => (groupBy === 'api_key' ? keyNames.get(row.original.group) ?? row.original.group : row.original.group),
      },
      { id: 'requests', accessorKey: 'requests', header: 'Requests', size: 110, meta: NUMERIC, cell: count },
      { id: 'prompt_tokens', accessorKey: 'prompt_tokens', header: 'Prompt tokens', size: 140, meta: NUMERIC, cell: count },
      // Part of the prompt tokens: served from the engine's prefix cache, at the cached rate.
      { id: 'cached_prompt_tokens', accessorKey: 'cached_prompt_tokens', header: 'Cached prompt tokens', size: 170, meta: NUMERIC, cell: count },
      { id: 'completion_tokens', accessorKey: 'completion_tokens', header: 'Completion tokens', size: 160, meta: NUMERIC, cell: count },
      { id: 'reasoning_tokens', accessorKey: 'reasoning_tokens', header: 'Reasoning tokens', size: 150, meta: NUMERIC, cell: count },
      { id: 'errors', accessorKey: 'errors', header: 'Errors', size: 100, meta: NUMERIC, cell: count },
    ],
    [groupBy, keyNames],
  );
  const totals = usage.data ? usageTotals(usage.data) : null;
  return (
    <>
      <PageHeader title="Usage">
        <a className="button" href={withQuery('/usage', { ...query, format: 'csv' })} download="usage.csv">
          Download CSV
        </a>
      </PageHeader>
      <div className="filters">
        <SelectField label="Group by" value={groupBy} onChange={(e) => setGroupBy(e.target.value as GroupBy)}>
          {(Object.keys(GROUP_LABELS) as GroupBy[]).map((g) => (
            <option key={g} value={g}>
              {GROUP_LABELS[g]}
            </option>
          ))}
        </SelectField>
        <SelectField label="Period" value={days} onChange={(e) => setDays(Number(e.target.value))}>
          {PERIODS.map((d) => (
            <option key={d} value={d}>
              Last {d === 1 ? '24 hours' : `${d} days`}
            </option>
          ))}
        </SelectField>
      </div>
      <Card title="Requests and tokens through /v1">
        {usage.isPending ? <Loading /> : usage.isError ? <ErrorMessage error={usage.error} /> : usage.data.length === 0 ? (
          <Empty>No request in this period.</Empty>
        ) : (
          <>
            <DataTable id={`usage-${groupBy}`} label="Usage" columns={columns} data={usage.data} getRowId={(l) => l.group} />
            {totals ? (
              <p className="muted">
                Total: {formatCount(totals.requests)} requests, {formatCount(totals.prompt_tokens)} prompt ({formatCount(totals.cached_prompt_tokens)} cached) +{' '}
                {formatCount(totals.completion_tokens)} completion tokens ({formatCount(totals.reasoning_tokens)} reasoning), {formatCount(totals.errors)} errors.
              </p>
            ) : null}
          </>
        )}
      </Card>
    </>
  );
}
