// "Get started" on the dashboard: activate → deploy → create a key → call
// it, each step ticked from what the organization has, with a link to where
// it is done. Shown to those who deploy (ManageInstances) until all four
// are done.
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { api } from '../api/client';
import type { ApiKey, Instance, Provider } from '../api/types';
import { useCan } from '../auth/useMe';
import { Card } from '../components/ui';
import { keyKeys } from '../keys/api';
import { checklistSteps } from './checklist';

export function FirstRunChecklist({ instances, requests }: { instances: readonly Instance[] | undefined; requests: number | undefined }) {
  const enabled = useCan('ManageInstances');
  const providers = useQuery({ queryKey: ['providers'], queryFn: () => api<Provider[]>('/providers'), enabled });
  const keys = useQuery({ queryKey: keyKeys.list, queryFn: () => api<ApiKey[]>('/api-keys'), enabled });
  if (!enabled || !providers.data || !instances || !keys.data || requests === undefined) return null;
  const steps = checklistSteps({
    activated: providers.data.some((p) => p.activation.operational),
    deployed: instances.length > 0,
    keyed: keys.data.length > 0,
    called: requests > 0,
  });
  const done = steps.filter((s) => s.done).length;
  if (done === steps.length) return null;
  return (
    <Card title="Get started" actions={<span className="muted">{`${done} of ${steps.length} done`}</span>}>
      <ol className="checklist">
        {steps.map((s) => (
          <li key={s.id} className={s.done ? 'checklist-done' : undefined} aria-label={`${s.title}: ${s.done ? 'done' : 'to do'}`}>
            <span className="checklist-mark" aria-hidden="true">
              {s.done ? '✓' : ''}
            </span>
            <div>
              <strong>{s.title}</strong>
              <p className="muted small">{s.text}</p>
            </div>
            {s.done ? null : (
              <Link className="button" to={s.link.to}>
                {s.link.label}
              </Link>
            )}
          </li>
        ))}
      </ol>
    </Card>
  );
}
