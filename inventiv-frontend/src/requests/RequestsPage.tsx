// The request log (GET /usage/requests): the organization's /v1 requests,
// newest first, filtered, a page at a time with the API's cursor; above it
// the latency, time to first token and error rate per model
// (GET /usage/latency) over a chosen window.
import { useMemo, useState, type FormEvent } from 'react';
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { api } from '../api/client';
import type { ModelLatency, RequestEntry, RequestPage } from '../api/types';
import { CopyButton } from '../components/CopyButton';
import { DataTable, NUMERIC } from '../components/DataTable';
import { formatCount, formatDuration } from '../components/format';
import { Badge, Card, DateText, Empty, ErrorMessage, Field, Loading, PageHeader, SelectField } from '../components/ui';
import { useApiKeys } from '../keys/api';
import { formatRate, keyLabel, NO_FILTERS, requestsQuery, STATUS_LABELS, statusTone, type Filters, type StatusFilter } from './requests';

const PAGE_SIZE = 50;
const WINDOWS = [1, 24, 168, 720];
const ms = ({ getValue }: { getValue: () => unknown }) => formatDuration(getValue() as number | null);

function LatencyCard() {
  const [hours, setHours] = useState(24);
  const latency = useQuery({
    queryKey: ['usage-latency', hours],
    queryFn: () => {
      const to = new Date();
      const from = new Date(to.getTime() - hours * 3_600_000);
      return api<ModelLatency[]>('/usage/latency', { query: { from: from.toISOString(), to: to.toISOString() } });
    },
  });
  const columns = useMemo<ColumnDef<ModelLatency>[]>(
    () => [
      { id: 'model', accessorKey: 'model', header: 'Model', size: 260 },
      { id: 'requests', accessorKey: 'requests', header: 'Requests', size: 110, meta: NUMERIC, cell: ({ row }) => formatCount(row.original.requests) },
      { id: 'error_rate', accessorKey: 'error_rate', header: 'Errors', size: 100, meta: NUMERIC, cell: ({ row }) => formatRate(row.original.error_rate) },
      { id: 'latency_p50_ms', accessorKey: 'latency_p50_ms', header: 'Latency p50', size: 120, meta: NUMERIC, cell: ms },
      { id: 'latency_p95_ms', accessorKey: 'latency_p95_ms', header: 'Latency p95', size: 120, meta: NUMERIC, cell: ms },
      { id: 'ttft_p50_ms', accessorKey: 'ttft_p50_ms', header: 'TTFT p50', size: 110, meta: NUMERIC, cell: ms },
      { id: 'ttft_p95_ms', accessorKey: 'ttft_p95_ms', header: 'TTFT p95', size: 110, meta: NUMERIC, cell: ms },
    ],
    [],
  );
  return (
    <Card
      title="Latency per model"
      actions={
        <SelectField label="Window" value={hours} onChange={(e) => setHours(Number(e.target.value))}>
          {WINDOWS.map((h) => (
            <option key={h} value={h}>
              Last {h === 1 ? 'hour' : h < 168 ? `${h} hours` : `${h / 24} days`}
            </option>
          ))}
        </SelectField>
      }
    >
      <p className="muted">Percentiles of successful requests; time to first token (TTFT) of streamed ones.</p>
      {latency.isPending ? <Loading /> : latency.isError ? <ErrorMessage error={latency.error} /> : latency.data.length === 0 ? (
        <Empty>No request in this window.</Empty>
      ) : (
        <DataTable id="request-latency" label="Latency per model" columns={columns} data={latency.data} getRowId={(m) => m.model} />
      )}
    </Card>
  );
}

function FilterBar({ applied, onApply }: { applied: Filters; onApply: (f: Filters) => void }) {
  const [draft, setDraft] = useState<Filters>(applied);
  const keys = useApiKeys();
  const set = (k: keyof Filters) => (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onApply(draft);
  };
  return (
    <form className="filters" onSubmit={submit} aria-label="Request filters">
      <Field label="Model" value={draft.model} onChange={set('model')} placeholder="Any model" />
      <SelectField label="API key" value={draft.apiKeyId} onChange={set('apiKeyId')}>
        <option value="">Any key</option>
        {(keys.data ?? []).map((k) => (
          <option key={k.id} value={k.id}>
            {k.name}
          </option>
        ))}
      </SelectField>
      <SelectField label="Status" value={draft.status} onChange={set('status')}>
        <option value="">Any status</option>
        {(Object.keys(STATUS_LABELS) as StatusFilter[]).map((s) => (
          <option key={s} value={s}>
            {STATUS_LABELS[s]}
          </option>
        ))}
      </SelectField>
      <Field label="From" type="datetime-local" value={draft.from} onChange={set('from')} />
      <Field label="To" type="datetime-local" value={draft.to} onChange={set('to')} />
      <Field label="Request id" value={draft.requestId} onChange={set('requestId')} />
      <button type="submit" className="button button-primary">
        Apply
      </button>
      <button
        type="button"
        className="button"
        onClick={() => {
          setDraft(NO_FILTERS);
          onApply(NO_FILTERS);
        }}
      >
        Clear
      </button>
    </form>
  );
}

export function RequestsPage() {
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const requests = useInfiniteQuery({
    queryKey: ['usage-requests', filters],
    queryFn: ({ pageParam }) => api<RequestPage>('/usage/requests', { query: requestsQuery(filters, PAGE_SIZE, pageParam) }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_before ?? undefined,
  });
  const rows = useMemo(() => requests.data?.pages.flatMap((p) => p.items) ?? [], [requests.data]);
  // The pages already shown stay when the next one fails.
  const nextPageError = requests.isFetchNextPageError ? requests.error : null;
  const columns = useMemo<ColumnDef<RequestEntry>[]>(
    () => [
      { id: 'at', accessorKey: 'at', header: 'Time', size: 130, cell: ({ row }) => <DateText value={row.original.at} /> },
      { id: 'key', accessorFn: (r) => keyLabel(r), header: 'Key', size: 160 },
      { id: 'user', accessorFn: (r) => r.user_email ?? '—', header: 'User', size: 150 },
      { id: 'model', accessorKey: 'model', header: 'Model', size: 170 },
      {
        id: 'tokens',
        accessorFn: (r) => r.prompt_tokens + r.completion_tokens,
        header: 'Tokens in / out',
        size: 120,
        meta: NUMERIC,
        cell: ({ row }) => `${formatCount(row.original.prompt_tokens)} / ${formatCount(row.original.completion_tokens)}`,
      },
      { id: 'ttft_ms', accessorKey: 'ttft_ms', header: 'TTFT', size: 75, meta: NUMERIC, cell: ms },
      { id: 'latency_ms', accessorKey: 'latency_ms', header: 'Latency', size: 105, meta: NUMERIC, cell: ms },
      {
        id: 'status',
        accessorKey: 'status',
        header: 'Status',
        size: 95,
        cell: ({ row }) => <Badge tone={statusTone(row.original.status)}>{row.original.status}</Badge>,
      },
      {
        // The row's action: copying the id, to find the request in the logs.
        id: 'actions',
        accessorKey: 'request_id',
        header: 'Request id',
        size: 170,
        enableSorting: false,
        cell: ({ row }) => (
          <span className="copy-cell">
            <code title={row.original.request_id}>{row.original.request_id}</code>
            <CopyButton text={row.original.request_id} />
          </span>
        ),
      },
    ],
    [],
  );
  return (
    <>
      <PageHeader title="Requests" />
      <LatencyCard />
      <FilterBar applied={filters} onApply={setFilters} />
      <Card title="Request log">
        {requests.isPending ? <Loading /> : requests.isError ? <ErrorMessage error={requests.error} /> : rows.length === 0 ? (
          <Empty>No request matches.</Empty>
        ) : (
          <>
            <DataTable id="requests" label="Requests" columns={columns} data={rows} />
            {requests.hasNextPage ? (
              <button type="button" className="button" disabled={requests.isFetchingNextPage} onClick={() => requests.fetchNextPage()}>
                {requests.isFetchingNextPage ? 'Loading…' : 'Load more'}
              </button>
            ) : (
              <p className="muted">{formatCount(rows.length)} requests, all shown.</p>
            )}
            <ErrorMessage error={nextPageError} />
          </>
        )}
      </Card>
    </>
  );
}
