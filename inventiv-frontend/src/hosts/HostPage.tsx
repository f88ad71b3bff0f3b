// One host: where it is, its GPUs (declared or read with nvidia-smi), its
// cost, its pinned host key and last verification, the actions its status
// allows (owners and admins), and its history of status changes with their
// reasons, newest first.
import { Link, useParams } from 'react-router';
import { ApiError } from '../api/client';
import type { HostHistoryEntry } from '../api/types';
import { useCan } from '../auth/useMe';
import { statusTones } from '../components/statusTones';
import { Card, DateText, Empty, ErrorMessage, Loading, PageHeader, StatusBadge } from '../components/ui';
import { gpusText, gpuUse, useHost, useHostAction, useHostHistory } from './api';
import { HostActionButtons, HourlyCost, LastCheck, VerificationOutcome } from './HostsPage';

export function HostPage() {
  const { id = '' } = useParams();
  const host = useHost(id);
  const history = useHostHistory(id);
  const canManage = useCan('ManageHosts');
  const action = useHostAction();

  if (host.isPending) return <Loading />;
  if (host.isError) {
    return (
      <>
        <PageHeader title="Host" />
        {host.error instanceof ApiError && host.error.status === 404 ? <p>No such host in this organization.</p> : <ErrorMessage error={host.error} />}
        <Link to="/hosts">Back to hosts</Link>
      </>
    );
  }
  const h = host.data;
  return (
    <>
      <PageHeader title={h.label}>
        <Link to="/hosts" className="button">
          All hosts
        </Link>
        {canManage ? <HostActionButtons host={h} action={action} /> : null}
      </PageHeader>
      <ErrorMessage error={action.error} />
      <VerificationOutcome action={action} />
      <Card title="Host">
        <dl className="facts">
          <dt>Status</dt>
          <dd>
            <StatusBadge kind="host" status={h.status} />
          </dd>
          <dt>Address</dt>
          <dd>
            {h.ssh_user}@{h.address}:{h.ssh_port}
          </dd>
          <dt>Pool</dt>
          <dd>{h.pool}</dd>
          <dt>GPUs</dt>
          <dd>
            {gpusText(h)} ({h.gpus_detected ? 'read with nvidia-smi' : 'declared'})
          </dd>
          <dt>Hourly cost</dt>
          <dd>
            <HourlyCost host={h} />
          </dd>
          <dt>Host key</dt>
          <dd>{h.host_key_fingerprint ?? <span className="muted">not pinned yet: pinned at the first successful verification</span>}</dd>
          <dt>Last check</dt>
          <dd>
            <LastCheck host={h} />
            {h.last_check ? <div className={h.last_check.ok ? 'muted small' : 'error small'}>{h.last_check.message}</div> : null}
          </dd>
          <dt>Registered</dt>
          <dd>
            <DateText value={h.created_at} />
          </dd>
          {h.removed_at ? (
            <>
              <dt>Removed</dt>
              <dd>
                <DateText value={h.removed_at} />
              </dd>
            </>
          ) : null}
        </dl>
      </Card>
      {h.gpu_count > 0 ? (
        <Card title="GPUs in use">
          <ul className="plain-list" aria-label="GPUs in use">
            {gpuUse(h).map((g) => (
              <li key={g.index}>
                GPU {g.index}:{' '}
                {g.instanceId === null ? (
                  <span className="muted">free</span>
                ) : (
                  <>
                    <Link to={`/instances/${g.instanceId}`}>instance {g.instanceId.slice(0, 8)}</Link>
                    {g.releasing ? <span className="muted"> (being released: waits for the host to answer)</span> : null}
                  </>
                )}
              </li>
            ))}
          </ul>
        </Card>
      ) : null}
      <Card title="History">
        {history.isPending ? <Loading /> : history.isError ? <ErrorMessage error={history.error} /> : <HostTimeline entries={history.data} />}
      </Card>
    </>
  );
}

/** The history, newest first (the API answers oldest first): the move, why, and who. */
export function HostTimeline({ entries }: { entries: HostHistoryEntry[] }) {
  if (entries.length === 0) return <Empty>Nothing recorded yet.</Empty>;
  const ordered = [...entries].reverse();
  return (
    <ol className="timeline" aria-label="Host history">
      {ordered.map((e, n) => (
        <li key={`${e.at}-${n}`} className={`timeline-item timeline-${statusTones.host[e.to_status]}`}>
          <span className="timeline-dot" aria-hidden="true" />
          <div>
            {e.from_status ? (
              <>
                <StatusBadge kind="host" status={e.from_status} /> →{' '}
              </>
            ) : null}
            <StatusBadge kind="host" status={e.to_status} /> <span>{e.reason}</span>
            <div className="muted small">
              <DateText value={e.at} /> · {e.actor_user_id ? 'by a member' : 'by the control plane'}
            </div>
          </div>
        </li>
      ))}
    </ol>
  );
}
