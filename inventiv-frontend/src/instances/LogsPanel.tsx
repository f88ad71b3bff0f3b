// The worker's log on the instance page (GET /instances/{id}/logs, read
// live from the agent through its relay): the last N lines, and a Follow
// mode that asks every 2 s for the lines after the last one shown. The box
// keeps to the bottom as lines arrive until the user scrolls up.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useLayoutEffect, useRef, useState } from 'react';
import { api } from '../api/client';
import type { InstanceLogs, InstanceStatus } from '../api/types';
import { CopyButton } from '../components/CopyButton';
import { Card, Empty, ErrorMessage, Loading, SelectField } from '../components/ui';
import { instanceKeys } from './api';
import { atBottom, FOLLOW_INTERVAL_MS, hasWorker, logsProblem, MAX_LINES, mergeLogs, TAIL_CHOICES } from './workerLogs';

export function LogsPanel({ instanceId, status }: { instanceId: string; status: InstanceStatus }) {
  const available = hasWorker(status);
  const client = useQueryClient();
  const [tail, setTail] = useState<number>(200);
  const [follow, setFollow] = useState(false);
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

  useLayoutEffect(() => {
    const el = box.current;
    if (stick && el) el.scrollTop = el.scrollHeight;
  }, [logs.data, stick]);

  const actions = (
    <div className="log-actions">
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
    <Card title="Logs" actions={actions}>
      {!available ? <Empty>No worker to read: the log is read from the instance's agent once it is installed, until the instance is terminated.</Empty> : null}
      {available && logs.isPending ? <Loading /> : null}
      {problemView}
      {data && data.events.length === 0 ? <Empty>The worker's log is empty.</Empty> : null}
      {data && data.events.length > 0 ? (
        <>
          <div ref={box} className="log-box" role="log" aria-label="Worker log" tabIndex={0} data-testid="worker-log" onScroll={(e) => setStick(atBottom(e.currentTarget))}>
            {data.events.map((e, n) => (
              <div key={n} className={`log-line log-${e.level}`}>
                <time dateTime={e.ts} title={e.ts}>
                  {e.ts.slice(11, 23)}
                </time>{' '}
                <span className="log-level">{e.level}</span> <strong>{e.event}</strong> <span className="log-detail">{e.detail}</span>
                {e.truncated ? <span className="muted"> (cut)</span> : null}
              </div>
            ))}
          </div>
          <p className="muted small">
            {data.events.length} line{data.events.length === 1 ? '' : 's'}, times in UTC
            {data.dropped > 0 ? ` · ${data.dropped} malformed entr${data.dropped === 1 ? 'y' : 'ies'} left out` : ''}
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
