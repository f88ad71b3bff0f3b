// "My dashboard": who I am, where I work, what runs there, what was used.
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { api } from '../api/client';
import type { InstanceStatus, UsageLine } from '../api/types';
import { useMe } from '../auth/useMe';
import { Card, DateText, Empty, ErrorMessage, Loading, PageHeader, StatusBadge } from '../components/ui';
import { useInstances } from '../instances/api';
import { formatCount } from '../components/format';
import { FirstRunChecklist } from './FirstRunChecklist';

export function DashboardPage() {
  const { data: me } = useMe();
  const instances = useInstances();
  const usage = useQuery({
    queryKey: ['usage', 'model'],
    queryFn: () => api<UsageLine[]>('/usage', { query: { group_by: 'model' } }),
  });
  if (!me) return null;
  const counts = new Map<InstanceStatus, number>();
  for (const i of instances.data ?? []) counts.set(i.status, (counts.get(i.status) ?? 0) + 1);
  const totalTokens = (usage.data ?? []).reduce((n, u) => n + u.prompt_tokens + u.completion_tokens, 0);
  const totalRequests = (usage.data ?? []).reduce((n, u) => n + u.requests, 0);
  return (
    <>
      <PageHeader title={`Hello, ${me.user.display_name}`} />
      <FirstRunChecklist instances={instances.data} requests={usage.data ? totalRequests : undefined} />
      <div className="grid">
        <Card title="You">
          <dl className="facts">
            <dt>E-mail</dt>
            <dd>{me.user.email}</dd>
            <dt>Member since</dt>
            <dd>
              <DateText value={me.user.created_at} />
            </dd>
            <dt>Platform admin</dt>
            <dd>{me.user.is_platform_admin ? 'yes' : 'no'}</dd>
          </dl>
        </Card>
        <Card title="Current organization">
          <dl className="facts">
            <dt>Name</dt>
            <dd>{me.current_organization.name}</dd>
            <dt>Kind</dt>
            <dd>{me.current_organization.kind}</dd>
            <dt>Your role</dt>
            <dd>{me.current_organization.role}</dd>
            <dt>Organizations</dt>
            <dd>{me.memberships.length}</dd>
          </dl>
        </Card>
        <Card title="Instances" actions={<Link to="/instances">All instances</Link>}>
          {instances.isPending ? (
            <Loading />
          ) : instances.isError ? (
            <ErrorMessage error={instances.error} />
          ) : counts.size === 0 ? (
            <Empty>No instance yet.</Empty>
          ) : (
            <ul className="status-counts">
              {[...counts.entries()].map(([status, n]) => (
                <li key={status}>
                  <StatusBadge kind="instance" status={status} /> <strong>{n}</strong>
                </li>
              ))}
            </ul>
          )}
        </Card>
        <Card title="Usage, last 30 days">
          {usage.isPending ? (
            <Loading />
          ) : usage.isError ? (
            <ErrorMessage error={usage.error} />
          ) : (
            <>
              <p className="big-number">
                {formatCount(totalRequests)} <small>requests</small> · {formatCount(totalTokens)} <small>tokens</small>
              </p>
              {usage.data.length === 0 ? (
                <Empty>
                  No traffic yet. Try the <Link to="/playground">playground</Link>.
                </Empty>
              ) : (
                <table className="simple-table" aria-label="Usage by model">
                  <thead>
                    <tr>
                      <th scope="col">Model</th>
                      <th scope="col" className="num">Requests</th>
                      <th scope="col" className="num">Tokens in</th>
                      <th scope="col" className="num">Tokens out</th>
                      <th scope="col" className="num">Errors</th>
                    </tr>
                  </thead>
                  <tbody>
                    {usage.data.map((u) => (
                      <tr key={u.group}>
                        <td>{u.group}</td>
                        <td className="num">{formatCount(u.requests)}</td>
                        <td className="num">{formatCount(u.prompt_tokens)}</td>
                        <td className="num">{formatCount(u.completion_tokens)}</td>
                        <td className="num">{formatCount(u.errors)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </>
          )}
        </Card>
        <Card title="Your organizations">
          <ul className="plain-list">
            {me.memberships.map((m) => (
              <li key={m.id}>
                <span className="color-chip" style={{ background: m.sidebar_color ?? '#334155' }} aria-hidden="true" /> {m.name}{' '}
                <span className="muted">
                  ({m.kind}, {m.role})
                </span>
              </li>
            ))}
          </ul>
        </Card>
      </div>
    </>
  );
}
