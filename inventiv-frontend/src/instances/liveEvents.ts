// The dashboard's live view: one EventSource on GET /events/stream per
// current organization, whose events are written into the query cache
// (`snapshot` replaces the instance list, `instance.updated` and
// `worker.heartbeat` patch one row, `service.updated` patches a service and
// refetches its replicas and timeline), so every page showing instances or
// services is live.
import { useEffect, useRef, useState } from 'react';
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import { refreshSession } from '../api/client';
import { instanceStatusValues, isOneOf, serviceStateValues, workerStatusValues, type Instance, type InstanceStatus, type Service, type ServiceDetail } from '../api/types';
import { meKey } from '../auth/useMe';
import { budgetKeys } from '../budgets/api';
import { serviceKeys } from '../services/api';
import { instanceKeys } from './api';

/** What the hook needs of an EventSource (a fake one in tests). */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((this: EventSource, ev: Event) => unknown) | null;
  onerror: ((this: EventSource, ev: Event) => unknown) | null;
  addEventListener(type: string, listener: (event: MessageEvent) => void): void;
  close(): void;
}

export type EventSourceFactory = (url: string) => EventSourceLike;

export const defaultEventSource: EventSourceFactory = (url) =>
  new EventSource(url, { withCredentials: true }) as unknown as EventSourceLike;

export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'offline';

const CLOSED = 2;

export interface Heartbeat {
  at: string;
  worker_status?: string;
  engine_ready?: boolean;
  requests_running?: number;
  requests_waiting?: number;
  gpus?: { index: number; utilization_pct: number; memory_used_mib: number; memory_total_mib: number }[] | null;
  system?: { cpu_pct: number; memory_used_mib: number; memory_total_mib: number } | null;
}

function patchInstance(client: QueryClient, id: string, patch: (i: Instance) => Instance): boolean {
  let found = false;
  client.setQueryData<Instance[]>(instanceKeys.list, (list) =>
    list?.map((i) => {
      if (i.id !== id) return i;
      found = true;
      return patch(i);
    }),
  );
  client.setQueryData<Instance>(instanceKeys.one(id), (one) => (one ? patch(one) : one));
  return found;
}

/**
 * A replica's new status or progress on the service pages that show it; a
 * new status also refetches the service (its counts, hence its cold badge)
 * and the list.
 */
function patchReplica(client: QueryClient, id: string, status: InstanceStatus | undefined, progress: number | undefined): void {
  const details = client.getQueryCache().findAll({ queryKey: ['service'] }).filter((q) => q.queryKey.length === 2);
  for (const query of details) {
    const detail = query.state.data as ServiceDetail | undefined;
    const replica = detail?.replicas.find((r) => r.id === id);
    if (!detail || !replica) continue;
    client.setQueryData<ServiceDetail>(query.queryKey, {
      ...detail,
      replicas: detail.replicas.map((r) => (r.id === id ? { ...r, status: status ?? r.status, progress: progress ?? r.progress } : r)),
    });
    if (status !== undefined && status !== replica.status) {
      void client.invalidateQueries({ queryKey: query.queryKey, exact: true });
      void client.invalidateQueries({ queryKey: serviceKeys.list, exact: true });
    }
  }
}

/** A short notice of the live stream (an instance became ready, or failed). */
export interface Toast {
  tone: 'good' | 'bad';
  text: string;
  /** The page it is about. */
  to: string;
}

const FAILED: readonly InstanceStatus[] = ['provisioning_failed', 'startup_failed', 'worker_dead'];

/** The notice for an instance's change of status, if it deserves one: becoming ready, or failing. */
export function toastFor(id: string, name: string, before: InstanceStatus | undefined, after: InstanceStatus | undefined): Toast | null {
  if (before === undefined || after === undefined || before === after) return null;
  if (after === 'ready') return { tone: 'good', text: `${name} is ready`, to: `/instances/${id}` };
  if (FAILED.includes(after)) return { tone: 'bad', text: `${name} failed: ${after.replace(/_/g, ' ')}`, to: `/instances/${id}` };
  return null;
}

/** Applies one event of the stream to the cache; returns the notice it deserves, if any. */
export function applyEvent(client: QueryClient, type: string, data: unknown): Toast | null {
  const event = (data ?? {}) as Record<string, unknown>;
  switch (type) {
    case 'snapshot': {
      const instances = (event.instances ?? []) as Instance[];
      client.setQueryData<Instance[]>(instanceKeys.list, instances);
      for (const instance of instances) client.setQueryData(instanceKeys.one(instance.id), instance);
      return null;
    }
    case 'instance.updated': {
      const id = String(event.instance_id ?? '');
      if (!id) return null;
      const status = isOneOf(instanceStatusValues, event.status) ? event.status : undefined;
      const progress = typeof event.progress === 'number' ? event.progress : undefined;
      const now = new Date().toISOString();
      const before =
        client.getQueryData<Instance>(instanceKeys.one(id)) ??
        client.getQueryData<Instance[]>(instanceKeys.list)?.find((i) => i.id === id);
      const found = patchInstance(client, id, (i) => ({
        ...i,
        status: status ?? i.status,
        progress: progress ?? i.progress,
        updated_at: now,
      }));
      if (status === 'archived') {
        client.setQueryData<Instance[]>(instanceKeys.list, (list) => list?.filter((i) => i.id !== id));
        void client.invalidateQueries({ queryKey: instanceKeys.archived });
      } else if (!found || (status !== undefined && before?.status !== status)) {
        // A new instance (e.g. deployed from another tab), or a new status,
        // which comes with fields the event does not carry (address, agent,
        // errors): fetch the full rows. Progress alone is patched in place.
        void client.invalidateQueries({ queryKey: instanceKeys.list, exact: true });
        void client.invalidateQueries({ queryKey: instanceKeys.one(id), exact: true });
      }
      void client.invalidateQueries({ queryKey: instanceKeys.actions(id) });
      void client.invalidateQueries({ queryKey: instanceKeys.history(id) });
      patchReplica(client, id, status, progress);
      return before ? toastFor(id, before.name, before.status, status) : null;
    }
    case 'service.updated': {
      const id = String(event.service_id ?? '');
      if (!id) return null;
      const state = isOneOf(serviceStateValues, event.state) ? event.state : undefined;
      const desired = typeof event.desired_replicas === 'number' ? event.desired_replicas : undefined;
      const patch = <S extends Service>(s: S): S => ({ ...s, state: state ?? s.state, desired_replicas: desired ?? s.desired_replicas });
      let found = false;
      client.setQueryData<Service[]>(serviceKeys.list, (list) =>
        list?.map((s) => {
          if (s.id !== id) return s;
          found = true;
          return patch(s);
        }),
      );
      client.setQueryData<ServiceDetail>(serviceKeys.one(id), (one) => (one ? patch(one) : one));
      // The event carries the state and the wish; the replicas, the counts
      // and the timeline entry (with its reason) are read again.
      if (!found) void client.invalidateQueries({ queryKey: serviceKeys.list, exact: true });
      void client.invalidateQueries({ queryKey: serviceKeys.one(id), exact: true });
      void client.invalidateQueries({ queryKey: serviceKeys.events(id), exact: true });
      return null;
    }
    case 'worker.heartbeat': {
      const id = String(event.instance_id ?? '');
      if (!id) return null;
      const at = new Date().toISOString();
      patchInstance(client, id, (i) => ({
        ...i,
        worker_status: isOneOf(workerStatusValues, event.worker_status) ? event.worker_status : i.worker_status,
        last_heartbeat_at: at,
      }));
      client.setQueryData<Heartbeat>(instanceKeys.heartbeat(id), { ...(event as Omit<Heartbeat, 'at'>), at });
      return null;
    }
    case 'instance.usage_drift': {
      const id = String(event.instance_id ?? '');
      if (!id) return null;
      const reconciliation = event.usage_reconciliation as Instance['usage_reconciliation'];
      patchInstance(client, id, (i) => ({ ...i, usage_reconciliation: reconciliation ?? i.usage_reconciliation }));
      void client.invalidateQueries({ queryKey: instanceKeys.actions(id) });
      return null;
    }
    case 'resync':
      void client.invalidateQueries({ queryKey: instanceKeys.list });
      void client.invalidateQueries({ queryKey: serviceKeys.list });
      void client.invalidateQueries({ queryKey: ['service'] });
      return null;
    case 'budget.alert':
      // A threshold was crossed: the budgets page shows the new alert.
      void client.invalidateQueries({ queryKey: budgetKeys.list });
      void client.invalidateQueries({ queryKey: budgetKeys.alerts });
      return null;
    default:
      return null;
  }
}

const EVENT_TYPES = ['snapshot', 'instance.updated', 'service.updated', 'worker.heartbeat', 'instance.usage_drift', 'resync', 'budget.alert'];

/**
 * Keeps the cache in sync with the stream while mounted. `scope` (the
 * current organization) reconnects when it changes, since the server
 * filters by the organization the session had when the stream opened.
 */
export function useLiveEvents(
  scope: string | undefined,
  createEventSource: EventSourceFactory = defaultEventSource,
  onToast?: (toast: Toast) => void,
): LiveState {
  const client = useQueryClient();
  const [state, setState] = useState<LiveState>('connecting');
  // The latest callback, without reconnecting when it changes.
  const toast = useRef(onToast);
  toast.current = onToast;
  useEffect(() => {
    if (!scope) return;
    let source: EventSourceLike | null = null;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let attempts = 0;
    let stopped = false;

    const connect = () => {
      if (stopped) return;
      const es = createEventSource('/events/stream');
      source = es;
      es.onopen = () => {
        attempts = 0;
        setState('live');
      };
      es.onerror = () => {
        if (stopped) return;
        if (es.readyState !== CLOSED) {
          // The browser reconnects by itself (and gets a new snapshot).
          setState('reconnecting');
          return;
        }
        // Closed for good: an HTTP error, most likely an expired access
        // token. Refresh the session and open a new stream, backing off.
        es.close();
        setState('reconnecting');
        attempts += 1;
        const delay = Math.min(30_000, 1000 * 2 ** Math.min(attempts - 1, 5));
        retry = setTimeout(async () => {
          const ok = await refreshSession();
          if (!ok) {
            setState('offline');
            void client.invalidateQueries({ queryKey: meKey });
          }
          connect();
        }, delay);
      };
      for (const type of EVENT_TYPES) {
        es.addEventListener(type, (message: MessageEvent) => {
          let data: unknown = null;
          try {
            data = JSON.parse(String(message.data));
          } catch {
            return;
          }
          if (type === 'snapshot') setState('live');
          const notice = applyEvent(client, type, data);
          if (notice) toast.current?.(notice);
        });
      }
    };

    setState('connecting');
    connect();
    return () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      source?.close();
    };
  }, [scope, client, createEventSource]);
  return state;
}
