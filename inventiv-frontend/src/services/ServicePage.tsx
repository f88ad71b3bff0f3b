// One service: its state (and cold badge), its replicas (instances, linking
// to their pages, each with the revision it was made at), its policy and its
// editing (owners and admins; the API's bounds checked first, the API's
// refusal shown as it words it), pause, resume, rollout and delete, a chart
// of its replicas over time and its timeline of scaling decisions with their
// reasons — all live through the events stream.
import { useQueries } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { Link, useParams } from 'react-router';
import { api, ApiError } from '../api/client';
import type { Instance, InstanceMetrics, ServiceDetail, ServiceEvent } from '../api/types';
import { useCan } from '../auth/useMe';
import { LineChart } from '../components/LineChart';
import { statusTones } from '../components/statusTones';
import { Card, DateText, Empty, ErrorMessage, Field, Loading, PageHeader, ProgressBar, StatusBadge } from '../components/ui';
import { allowedServiceActions, useRollout, useService, useServiceAction, useServiceEvents, useUpdateService, type ServiceAction } from './api';
import { PolicyFields } from './PolicyFields';
import { DESIRED_KINDS, REPLICA_KINDS, parsePolicy, policyForm, requestsPerMinute, stepSeries, type PolicyErrors } from './policy';
import { policyText, replicasText, ServiceState } from './ServicesPage';

const ACTION_LABEL: Record<ServiceAction, string> = { pause: 'Pause', resume: 'Resume', delete: 'Delete' };
const CONFIRM: Record<ServiceAction, (name: string) => string | null> = {
  pause: (name) => `Pause ${name}? Every replica is terminated until it is resumed.`,
  resume: () => null,
  delete: (name) => `Delete ${name}? Every replica is terminated and the service ends.`,
};

export function ServicePage() {
  const { id = '' } = useParams();
  const service = useService(id);
  const events = useServiceEvents(id);
  const canManage = useCan('ManageInstances');
  const act = useServiceAction(id);
  const [editing, setEditing] = useState(false);
  const [rolling, setRolling] = useState(false);

  if (service.isPending) return <Loading />;
  if (service.isError) {
    return (
      <>
        <PageHeader title="Service" />
        {service.error instanceof ApiError && service.error.status === 404 ? <p>No such service in this organization.</p> : <ErrorMessage error={service.error} />}
        <Link to="/services">Back to services</Link>
      </>
    );
  }
  const s = service.data;
  const actions = canManage ? allowedServiceActions(s.state) : [];
  return (
    <>
      <PageHeader title={s.name}>
        <Link to="/services" className="button">
          All services
        </Link>
        {actions.map((a) => (
          <button
            key={a}
            type="button"
            className={a === 'delete' ? 'button button-danger' : 'button'}
            disabled={act.isPending}
            onClick={() => {
              const question = CONFIRM[a](s.name);
              if (question === null || window.confirm(question)) act.mutate(a);
            }}
          >
            {ACTION_LABEL[a]}
          </button>
        ))}
        {actions.length > 0 && !rolling ? (
          <button type="button" className="button" onClick={() => setRolling(true)}>
            Roll out
          </button>
        ) : null}
      </PageHeader>
      <ErrorMessage error={act.error} />
      {rolling ? (
        <Card title="Roll out">
          <RolloutForm service={s} onDone={() => setRolling(false)} />
        </Card>
      ) : null}
      <div className="grid">
        <Card title="Status">
          <p>
            <ServiceState service={s} />
          </p>
          <dl className="facts">
            <dt>Replicas</dt>
            <dd title="running / desired (min–max)">{replicasText(s)}</dd>
            <dt>By status</dt>
            <dd>
              {Object.entries(s.replica_counts)
                .map(([status, n]) => `${n} ${status.replace(/_/g, ' ')}`)
                .join(', ') || 'none'}
            </dd>
            <dt>Revision</dt>
            <dd>
              {s.revision}
              {s.outdated_replicas > 0 ? ` — rollout under way: ${s.outdated_replicas} outdated replica(s) left` : ''}
            </dd>
            <dt>Last scaled</dt>
            <dd>
              <DateText value={s.last_scaled_at} />
            </dd>
            <dt>Model</dt>
            <dd>
              {s.model_id} ({s.mode})
            </dd>
            <dt>Placements</dt>
            <dd>
              <ol className="placements" aria-label="Placements">
                {s.placements.map((p) => (
                  <li key={`${p.provider}/${p.zone}/${p.instance_type}`}>
                    {p.provider} / {p.zone} / {p.instance_type}
                  </li>
                ))}
              </ol>
            </dd>
            <dt>Created</dt>
            <dd>
              <DateText value={s.created_at} />
            </dd>
          </dl>
        </Card>
        <Card
          title="Policy"
          actions={
            canManage && actions.length > 0 && !editing ? (
              <button type="button" className="button button-small" onClick={() => setEditing(true)}>
                Edit policy
              </button>
            ) : null
          }
        >
          {editing ? <PolicyEditor service={s} onDone={() => setEditing(false)} /> : <PolicyFacts service={s} />}
        </Card>
      </div>
      <Card title="Replicas and load over time">
        <div className="charts">
          {events.isPending ? <Loading /> : events.isError ? <ErrorMessage error={events.error} /> : <ReplicasChart events={events.data} />}
          <LoadChart replicas={s.replicas} />
        </div>
      </Card>
      <Card title="Replicas">
        <ReplicasTable replicas={s.replicas} revision={s.revision} />
      </Card>
      <Card title="Timeline">
        {events.isPending ? <Loading /> : events.isError ? <ErrorMessage error={events.error} /> : <ServiceTimeline events={events.data} />}
      </Card>
    </>
  );
}

function PolicyFacts({ service: s }: { service: ServiceDetail }) {
  const none = (v: string | number | null | undefined, unit = '') => (v === null || v === undefined ? 'none' : `${v}${unit}`);
  return (
    <dl className="facts">
      <dt>Bounds</dt>
      <dd>
        {s.min_replicas} to {s.max_replicas} replicas
      </dd>
      <dt>Scales up past</dt>
      <dd>{policyText(s)}</dd>
      <dt>Idle window</dt>
      <dd>{s.idle_window_s} s</dd>
      <dt>Scale-down cooldown</dt>
      <dd>{s.scale_down_cooldown_s} s</dd>
      <dt>GPU hours cap</dt>
      <dd>{none(s.gpu_hours_cap, ' per month')}</dd>
      <dt>EUR cap</dt>
      <dd>{none(s.eur_cap, ' per month')}</dd>
    </dl>
  );
}

/** The policy's form: checked with the API's bounds, then sent whole (an emptied optional field clears it). */
export function PolicyEditor({ service, onDone }: { service: ServiceDetail; onDone: () => void }) {
  const update = useUpdateService(service.id);
  const [form, setForm] = useState(() => policyForm(service));
  const [errors, setErrors] = useState<PolicyErrors>({});
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const parsed = parsePolicy(form);
    if (!parsed.ok) {
      setErrors(parsed.errors);
      return;
    }
    setErrors({});
    update.mutate(parsed.policy, { onSuccess: onDone });
  };
  return (
    <form className="form" aria-label="Edit the policy" onSubmit={submit} noValidate>
      <PolicyFields value={form} errors={errors} onChange={setForm} />
      <ErrorMessage error={update.error} />
      <div className="form-actions">
        <button type="button" className="button" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="button button-primary" disabled={update.isPending}>
          {update.isPending ? 'Saving…' : 'Save policy'}
        </button>
      </div>
    </form>
  );
}

/** Reasons longer than this the API refuses. */
const ROLLOUT_REASON_MAX = 200;

/** A rollout: an optional reason for the timeline, then every replica replaced one at a time. */
export function RolloutForm({ service, onDone }: { service: ServiceDetail; onDone: () => void }) {
  const rollout = useRollout(service.id);
  const [reason, setReason] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const why = reason.trim();
    rollout.mutate(why === '' ? {} : { reason: why }, { onSuccess: onDone });
  };
  return (
    <form className="form" aria-label="Roll out" onSubmit={submit} noValidate>
      <p>
        Replaces the {service.active_replicas} replica(s) of {service.name} one at a time with new ones, installed on the first placement with the
        agent and engine the control plane ships today: each new replica is ready before an old one drains, so serving never drops below{' '}
        {service.desired_replicas} replica(s).
      </p>
      <Field
        label="Reason (optional)"
        hint={`At most ${ROLLOUT_REASON_MAX} characters, shown in the timeline`}
        value={reason}
        maxLength={ROLLOUT_REASON_MAX}
        onChange={(e) => setReason(e.target.value)}
      />
      <ErrorMessage error={rollout.error} />
      <div className="form-actions">
        <button type="button" className="button" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="button button-primary" disabled={rollout.isPending}>
          {rollout.isPending ? 'Starting…' : 'Start the rollout'}
        </button>
      </div>
    </form>
  );
}

function ReplicasChart({ events }: { events: ServiceEvent[] }) {
  const now = Date.now();
  const desired = stepSeries(events, DESIRED_KINDS, now);
  const running = stepSeries(events, REPLICA_KINDS, now);
  const series = [
    ...(desired.length > 0 ? [{ name: 'Desired', points: desired }] : []),
    ...(running.length > 0 ? [{ name: 'Replicas', points: running }] : []),
  ];
  return <LineChart title="Desired and counted replicas (from the timeline)" series={series} unit="replicas" />;
}

/** Replicas whose metrics the load chart reads: the newest ones (the API lists them newest first). */
const LOAD_REPLICAS = 16;

/** Requests per minute over the last hour, summed over the replicas' own series (GET /instances/{id}/metrics). */
function LoadChart({ replicas }: { replicas: Instance[] }) {
  const metrics = useQueries({
    queries: replicas.slice(0, LOAD_REPLICAS).map((r) => ({
      // The instance page's key: both pages share the answer.
      queryKey: ['instance', r.id, 'metrics', 60],
      queryFn: () => api<InstanceMetrics>(`/instances/${r.id}/metrics`, { query: { minutes: 60 } }),
      refetchInterval: 15_000,
    })),
  });
  const points = requestsPerMinute(metrics.flatMap((m) => (m.data ? [m.data] : [])));
  return <LineChart title="Requests per minute, all replicas (last hour)" series={points.length > 0 ? [{ name: 'Requests', points }] : []} unit="req" />;
}

function ReplicasTable({ replicas, revision }: { replicas: Instance[]; revision: number }) {
  if (replicas.length === 0) return <Empty>No replica: the service is at zero.</Empty>;
  return (
    <table className="simple-table" aria-label="Replicas">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Status</th>
          <th scope="col">Progress</th>
          <th scope="col">Where</th>
          <th scope="col">Revision</th>
          <th scope="col">Created</th>
        </tr>
      </thead>
      <tbody>
        {replicas.map((r) => (
          <tr key={r.id}>
            <td>
              <Link to={`/instances/${r.id}`}>{r.name}</Link>
            </td>
            <td>
              <StatusBadge kind="instance" status={r.status} />
            </td>
            <td>
              <ProgressBar value={r.progress} label={`Progress of ${r.name}`} />
            </td>
            <td>
              {r.provider} / {r.zone} / {r.instance_type}
            </td>
            <td>
              {r.service_revision}
              {r.service_revision < revision ? ' (outdated)' : ''}
            </td>
            <td>
              <DateText value={r.created_at} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The timeline, newest first as the API answers: what happened, why, and the count it moved. */
export function ServiceTimeline({ events }: { events: ServiceEvent[] }) {
  if (events.length === 0) return <Empty>Nothing recorded yet.</Empty>;
  const ordered = [...events].sort((a, b) => new Date(b.at).getTime() - new Date(a.at).getTime() || b.id - a.id);
  return (
    <ol className="timeline" aria-label="Service timeline">
      {ordered.map((e) => (
        <li key={e.id} className={`timeline-item timeline-${statusTones.serviceEvent[e.kind] ?? 'off'}`}>
          <span className="timeline-dot" aria-hidden="true" />
          <div>
            <StatusBadge kind="serviceEvent" status={e.kind} />{' '}
            {e.to_replicas !== null && e.to_replicas !== undefined ? (
              <strong>
                {e.from_replicas ?? '?'} → {e.to_replicas}
              </strong>
            ) : null}{' '}
            <span>{e.reason}</span>
            <div className="muted small">
              <DateText value={e.at} />
            </div>
          </div>
        </li>
      ))}
    </ol>
  );
}
