// The worker's log on the instance page: the bootstrap's output (kept in
// the action log's install steps), then the agent's events and the engine's
// own lines (GET /instances/{id}/logs, read live from the agent through its
// relay): the last N lines, and a Follow mode that asks every 2 s for the
// lines after the last one shown. A source filter, and Download saves the
// lines shown as text. The box keeps to the bottom as lines arrive until
// the user scrolls up.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useLayoutEffect, useMemo, useRef, useState } from 'react';
import { api } from '../api/client';
import type { ActionLogEntry, InstanceLogs, InstanceStatus } from '../api/types';
import { CopyButton } from '../components/CopyButton';
import { Card, Empty, ErrorMessage, Loading, SelectField } from '../components/ui';
import { instanceKeys } from './api';
import {
  atBottom,
  bootstrapLines,
  FOLLOW_INTERVAL_MS,
  hasWorker,
  LOG_SOURCES,
  type LogSource,
  logsProblem,
  logText,
  MAX_LINES,
  mergeLogs,
  TAIL_CHOICES,
  workerLines,
} from './workerLogs';

const SOURCE_LABELS: Record<LogSource, string> = { bootstrap: 'Bootstrap', agent: 'Agent', engine: 'Engine' };

/** Saves `text` as a file through a temporary link (no new window, no server round trip). */
function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  URL.revokeObjectURL(url);
}

export function LogsPanel({ instanceId, status, actions }: { instanceId: string; status: InstanceStatus; actions?: readonly ActionLogEntry[] }) {
  const available = hasWorker(status);
  const client = useQueryClient();
  const [tail, setTail] = useState<number>(200);
  const [follow, setFollow] = useState(false);
  const [source, setSource] = useState<LogSource | 'all'>('all');
  const [stick, setStick] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  const queryKey = instanceKeys.logs(instanceId, tail);
  const logs = useQuery({
    queryKey,
    queryFn: async () => {
      const previous = client.getQueryData<InstanceLogs>(queryKey);
      const since = previous?.events.at(-1)?.ts;
      const query = since ? { tail: MAX_LINES, since } : { tail };
      const page = await api<InstanceLogs>(`/instances/${instanceId}/logs`, { query });
      return since ? mergeLogs(previous, page) : page;
    },
    enabled: available,
    refetchInterval: follow && available ? FOLLOW_INTERVAL_MS : false,
    refetchOnWindowFocus: false,
    retry: false,
  });

  const bootstrap = useMemo(() => bootstrapLines(actions), [actions]);
  const lines = useMemo(() => {
    const all = [...bootstrap, ...workerLines(logs.data)];
    return source === 'all' ? all : all.filter((l) => l.source === source);
  }, [bootstrap, logs.data, source]);

  useLayoutEffect(() => {
    const el = box.current;
    if (stick && el) el.scrollTop = el.scrollHeight;
  }, [lines, stick]);

  const tools = (
    <div className="log-actions">
      <SelectField label="Source" value={source} onChange={(e) => setSource(e.target.value as LogSource | 'all')}>
        <option value="all">All</option>
        {LOG_SOURCES.map((s) => (
          <option key={s} value={s}>
            {SOURCE_LABELS[s]}
          </option>
        ))}
      </SelectField>
      <SelectField label="Lines" value={tail} onChange={(e) => setTail(Number(e.target.value))}>
        {TAIL_CHOICES.map((n) => (
          <option key={n} value={n}>
            {n}
          </option>
        ))}
      </SelectField>
      <label className="checkbox">
        <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} />
        Follow
      </label>
      <button type="button" className="button" disabled={!available || follow || logs.isFetching} onClick={() => void logs.refetch()}>
        Refresh
      </button>
      <button type="button" className="button" disabled={lines.length === 0} onClick={() => download(`instance-${instanceId}-log.txt`, logText(lines))}>
        Download
      </button>
    </div>
  );

  const problem = logs.isError ? logsProblem(logs.error) : null;
  const problemView =
    problem?.kind === 'no_worker' ? (
      <Empty>No worker to read yet: {problem.message}.</Empty>
    ) : problem?.kind === 'unreachable' ? (
      <div className="error" role="alert" data-testid="worker-log-unreachable">
        <p>Worker unreachable: {problem.message}.</p>
        {problem.requestId ? (
          <p className="small">
            Request <code>{problem.requestId}</code> <CopyButton text={problem.requestId} label="Copy request id" />
          </p>
        ) : null}
      </div>
    ) : problem ? (
      <ErrorMessage error={problem.error} />
    ) : null;

  const data = logs.data;
  return (
    <Card title="Logs" actions={tools}>
      {!available ? <Empty>No worker to read: the agent's and the engine's lines are read from the instance's agent once it is installed, until the instance is terminated.</Empty> : null}
      {available && logs.isPending ? <Loading /> : null}
      {problemView}
      {data && data.events.length === 0 ? <Empty>The worker's log is empty.</Empty> : null}
      {lines.length === 0 && source !== 'all' ? <Empty>No {SOURCE_LABELS[source].toLowerCase()} line yet.</Empty> : null}
      {lines.length > 0 ? (
        <>
          <div ref={box} className="log-box" role="log" aria-label="Worker log" tabIndex={0} data-testid="worker-log" onScroll={(e) => setStick(atBottom(e.currentTarget))}>
            {lines.map((l, n) => (
              <div key={n} className={`log-line log-${l.level} log-from-${l.source}`}>
                <time dateTime={l.ts} title={l.ts}>
                  {l.ts.slice(11, 23)}
                </time>{' '}
                <span className="log-source">{SOURCE_LABELS[l.source]}</span> <span className="log-level">{l.level}</span> <strong>{l.event}</strong>{' '}
                <span className="log-detail">{l.text}</span>
                {l.truncated ? <span className="muted"> (cut)</span> : null}
              </div>
            ))}
          </div>
          <p className="muted small">
            {lines.length} line{lines.length === 1 ? '' : 's'}, times in UTC
            {data && data.dropped > 0 ? ` · ${data.dropped} malformed entr${data.dropped === 1 ? 'y' : 'ies'} left out` : ''}
            {follow ? ' · following' : ''}
            {!stick ? (
              <>
                {' · '}
                <button type="button" className="button" onClick={() => setStick(true)}>
                  Back to the latest line
                </button>
              </>
            ) : null}
          </p>
        </>
      ) : null}
    </Card>
  );
}
