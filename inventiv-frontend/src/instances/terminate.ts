// What terminating an instance breaks, kept apart from React: the other
// instances still serving its model, and the organization's offerings of
// that model (their consumers' calls fail while nothing serves it).
import type { Instance, Offering } from '../api/types';

/** Statuses in which an instance serves, or soon will. */
const SERVING: readonly Instance['status'][] = ['ready', 'starting', 'installing', 'booting', 'provisioning', 'draining'];

export interface Consequences {
  /** Other instances of the organization serving (or about to serve) the same model. */
  others: Instance[];
  /** The organization's offerings of the model (they break when `others` is empty). */
  offerings: Offering[];
}

export function consequences(instance: Instance, instances: readonly Instance[] | undefined, offerings: readonly Offering[] | undefined): Consequences {
  return {
    others: (instances ?? []).filter((i) => i.id !== instance.id && i.model_id === instance.model_id && SERVING.includes(i.status)),
    offerings: (offerings ?? []).filter((o) => o.model_code === instance.model_id),
  };
}

/** What the instance page says of the worker: nothing is left of it once the instance is terminating or gone. */
export function workerLabel(instance: Pick<Instance, 'status' | 'worker_status'>): string {
  if (instance.status === 'terminating') return 'stopping (the instance is terminating)';
  if (instance.status === 'terminated' || instance.status === 'archived') return 'none (the instance is terminated)';
  return instance.worker_status ?? '—';
}
