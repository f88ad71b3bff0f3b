// One instance: its live status and progress, the actions on it, its
// metering check, its worker's log, its action-log timeline (the
// provisioning milestones and usage drift alerts, with their request ids)
// and status history; its trace id to find it in the traces.
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { ApiError } from '../api/client';
import type { ActionLogEntry, Instance } from '../api/types';
import { useCan } from '../auth/useMe';
import { ConnectBox } from '../components/ConnectBox';
import { CopyButton } from '../components/CopyButton';
import { Card, DateText, Empty, ErrorMessage, Loading, Money, PageHeader, ProgressBar, StatusBadge } from '../components/ui';
import { allowedActions, instanceKeys, useInstance, useInstanceAction, useInstanceActions, useInstanceHistory } from './api';
import { LogsPanel } from './LogsPanel';
import { TerminateDialog } from './TerminateDialog';
import { workerLabel } from './terminate';
import { stepLabel } from './timelineLabels';
import { VolumesCard } from './VolumesCard';
import type { Heartbeat } from './liveEvents';
import { MetricsPanel } from './MetricsPanel';
import { UsageDriftCard } from './UsageDriftCard';
import { formatDuration } from '../components/format';

function duration(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '' : formatDuration(ms);
}

export function InstancePage() {
  const { id = '' } = useParams();
  const navigate = useNavigate();
  const instance = useInstance(id);
  const actions = useInstanceActions(id);
  const history = useInstanceHistory(id);
  const heartbeat = useQuery<Heartbeat | null>({ queryKey: instanceKeys.heartbeat(id), queryFn: () => null, staleTime: Infinity });
  const canManage = useCan('ManageInstances');
  const act = useInstanceAction();
  const [terminating, setTerminating] = useState<Instance | null>(null);

  if (instance.isPending) return <Loading />;
  if (instance.isError) {
    return (
      <>
        <PageHeader title="Instance" />
        {instance.error instanceof ApiError && instance.error.status === 404 ? <p>No such instance in this organization.</p> : <ErrorMessage error={instance.error} />}
        <Link to="/instances">Back to instances</Link>
      </>
    );
  }
  const i = instance.data;
  const hb = heartbeat.data;
  return (
    <>
      <PageHeader title={i.name}>
        <Link to="/instances" className="button">
          All instances
        </Link>
        {canManage
          ? allowedActions(i.status).map((a) => (
              <button
                key={a}
                type="button"
                className={a === 'terminate' ? 'button button-danger' : 'button'}
                disabled={act.isPending}
                onClick={() => {
                  if (a === 'terminate') setTerminating(i);
                  else act.mutate({ id: i.id, action: a }, { onSuccess: (r) => r.status === 'archived' && navigate('/instances') });
                }}
              >
                {a[0]?.toUpperCase() + a.slice(1)}
              </button>
            ))
          : null}
      </PageHeader>
      <ErrorMessage error={act.error} />
      <TerminateDialog
        instance={terminating}
        onClose={() => setTerminating(null)}
        onConfirm={(t) => {
          setTerminating(null);
          act.mutate({ id: t.id, action: 'terminate' });
        }}
      />
      <div className="grid">
        <Card title="Status">
          <p>
            <StatusBadge kind="instance" status={i.status} />
          </p>
          <ProgressBar value={i.progress} label="Provisioning progress" />
          {i.error_code ? (
            <p className="error">
              {i.error_code}: {i.error_message}
            </p>
          ) : null}
          <dl className="facts">
            <dt>Worker</dt>
            <dd>{workerLabel(i)}</dd>
            <dt>Last heartbeat</dt>
            <dd>
              <DateText value={i.last_heartbeat_at} />
            </dd>
            {hb ? (
              <>
                <dt>Engine</dt>
                <dd>
                  {hb.engine_ready ? 'ready' : 'not ready'}, {hb.requests_running ?? 0} running, {hb.requests_waiting ?? 0} waiting
                </dd>
                {hb.gpus?.map((g) => (
                  <div key={g.index} className="fact-row">
                    <dt>GPU {g.index}</dt>
                    <dd>
                      {Math.round(g.utilization_pct)}% · {Math.round(g.memory_used_mib)}/{Math.round(g.memory_total_mib)} MiB
                    </dd>
                  </div>
                ))}
              </>
            ) : null}
          </dl>
        </Card>
        {i.status === 'ready' ? <ConnectBox model={i.model_id} /> : null}
        <Card title="Details">
          <dl className="facts">
            <dt>Model</dt>
            <dd>{i.model_id}</dd>
            <dt>Where</dt>
            <dd>
              {i.provider} / {i.zone} / {i.instance_type} ({i.mode})
            </dd>
            {i.host ? (
              <>
                <dt>Host</dt>
                <dd>
                  <Link to={`/hosts/${i.host.host_id}`}>{i.host.label}</Link> · GPU{i.host.gpus.length > 1 ? 's' : ''} {i.host.gpus.join(', ')}
                </dd>
              </>
            ) : null}
            <dt>Address</dt>
            <dd>{i.ip_address ?? '—'}</dd>
            <dt>Price</dt>
            <dd>
              <Money value={i.price_eur_per_hour} per="h" />
            </dd>
            <dt>Cost so far</dt>
            <dd>
              <Money value={i.cost_so_far_eur} />
            </dd>
            <dt>Created</dt>
            <dd>
              <DateText value={i.created_at} />
            </dd>
            <dt>Agent</dt>
            <dd>
              {i.worker_agent_version ?? '—'}
              {i.agent_version_mismatch ? ' (outdated)' : ''}
            </dd>
            {i.trace_id ? (
              <>
                <dt>Trace</dt>
                <dd>
                  <code title="The trace of the request the instance is following (deployment, reinstall, termination)">{i.trace_id}</code>{' '}
                  <CopyButton text={i.trace_id} label="Copy trace id" />
                </dd>
              </>
            ) : null}
          </dl>
        </Card>
      </div>
      <UsageDriftCard reconciliation={i.usage_reconciliation} />
      <MetricsPanel instanceId={i.id} />
      <VolumesCard instanceId={i.id} status={i.status} />
      <LogsPanel instanceId={i.id} status={i.status} actions={actions.data} />
      <Card title="Timeline">
        {actions.isPending ? <Loading /> : actions.isError ? <ErrorMessage error={actions.error} /> : <Timeline entries={actions.data} />}
      </Card>
      <Card title="Status history">
        {history.isPending ? (
          <Loading />
        ) : history.isError ? (
          <ErrorMessage error={history.error} />
        ) : history.data.length === 0 ? (
          <Empty>No change yet.</Empty>
        ) : (
          <table className="simple-table" aria-label="Status history">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">From</th>
                <th scope="col">To</th>
                <th scope="col">By</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {history.data.map((h, n) => (
                <tr key={n}>
                  <td>
                    <DateText value={h.at} />
                  </td>
                  <td>{h.from_status ? <StatusBadge kind="instance" status={h.from_status} /> : <span className="muted">new</span>}</td>
                  <td>
                    <StatusBadge kind="instance" status={h.to_status} />
                  </td>
                  <td>{h.actor}</td>
                  <td>{h.error_code ? `${h.error_code}: ${h.error_message ?? ''}` : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </>
  );
}

function Timeline({ entries }: { entries: ActionLogEntry[] }) {
  if (entries.length === 0) return <Empty>No step yet: the orchestrator has not picked this instance up.</Empty>;
  return (
    <ol className="timeline">
      {entries.map((e) => (
        <li key={e.id} className={`timeline-item timeline-${e.status}`}>
          <span className="timeline-dot" aria-hidden="true" />
          <div>
            <strong>{stepLabel(e.action_type)}</strong> <StatusBadge kind="action" status={e.status} /> <span className="muted">{duration(e.duration_ms)}</span>{' '}
            <code className="muted small">{e.action_type}</code>
            <div className="muted small">
              <DateText value={e.started_at} />
              {e.request_id ? (
                <>
                  {' · request '}
                  <code>{e.request_id}</code> <CopyButton text={e.request_id} label="Copy" />
                </>
              ) : null}
            </div>
            {e.error_code ? (
              <div className="error small">
                {e.error_code}: {e.error_message}
              </div>
            ) : null}
          </div>
        </li>
      ))}
    </ol>
  );
}
