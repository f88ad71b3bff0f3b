import { act, renderHook } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import type { Instance, InstanceStatus, Service, ServiceDetail } from '../api/types';
import { budgetKeys } from '../budgets/api';
import { serviceKeys } from '../services/api';
import { instanceKeys } from './api';
import { toastFor, useLiveEvents, type EventSourceLike } from './liveEvents';

/** An EventSource the test drives by hand. */
class FakeEventSource implements EventSourceLike {
  static opened: FakeEventSource[] = [];
  readyState = 0;
  closed = false;
  onopen: EventSourceLike['onopen'] = null;
  onerror: EventSourceLike['onerror'] = null;
  private listeners = new Map<string, ((e: MessageEvent) => void)[]>();
  constructor(readonly url: string) {
    FakeEventSource.opened.push(this);
  }
  addEventListener(type: string, listener: (e: MessageEvent) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  open() {
    this.readyState = 1;
    this.onopen?.call(this as unknown as EventSource, new Event('open'));
  }
  emit(type: string, data: unknown) {
    const event = new MessageEvent(type, { data: JSON.stringify(data) });
    for (const l of this.listeners.get(type) ?? []) l(event);
  }
  fail(readyState: number) {
    this.readyState = readyState;
    this.onerror?.call(this as unknown as EventSource, new Event('error'));
  }
}

function instance(id: string, status: InstanceStatus = 'provisioning', progress = 0): Instance {
  return {
    id,
    name: `node-${id}`,
    provider: 'mock',
    zone: 'mock-zone-1',
    instance_type: 'mock-1gpu-24g',
    model_id: 'Qwen/Qwen2.5-0.5B-Instruct',
    mode: 'mono',
    status,
    progress,
    cost_so_far_eur: '0.0000',
    agent_version_mismatch: false,
    service_revision: 1,
    created_at: '2026-11-23T10:00:00Z',
    updated_at: '2026-11-23T10:00:00Z',
  };
}

function setup(scope = 'org-1') {
  FakeEventSource.opened = [];
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const wrapper = ({ children }: { children: ReactNode }) => <QueryClientProvider client={client}>{children}</QueryClientProvider>;
  const factory = (url: string) => new FakeEventSource(url);
  const hook = renderHook(({ s }) => useLiveEvents(s, factory), { wrapper, initialProps: { s: scope } });
  return { client, hook, source: () => FakeEventSource.opened.at(-1)! };
}

describe('useLiveEvents', () => {
  it('opens the stream of the organization and reports when it is live', () => {
    const { hook, source } = setup();
    expect(source().url).toBe('/events/stream');
    expect(hook.result.current).toBe('connecting');
    act(() => source().open());
    expect(hook.result.current).toBe('live');
  });

  it('fills the cache from the snapshot, then applies updates and heartbeats', () => {
    const { client, source } = setup();
    act(() => {
      source().open();
      source().emit('snapshot', { type: 'snapshot', instances: [instance('a'), instance('b', 'ready', 100)] });
    });
    expect(client.getQueryData<Instance[]>(instanceKeys.list)?.map((i) => [i.id, i.status, i.progress])).toEqual([
      ['a', 'provisioning', 0],
      ['b', 'ready', 100],
    ]);
    expect(client.getQueryData<Instance>(instanceKeys.one('a'))?.status).toBe('provisioning');

    act(() => {
      source().emit('instance.updated', { type: 'instance.updated', instance_id: 'a', status: 'booting', progress: 35 });
      source().emit('instance.updated', { type: 'instance.updated', instance_id: 'a', status: 'installing', progress: 60 });
    });
    const a = client.getQueryData<Instance[]>(instanceKeys.list)?.find((i) => i.id === 'a');
    expect([a?.status, a?.progress]).toEqual(['installing', 60]);
    expect(client.getQueryData<Instance>(instanceKeys.one('a'))?.progress).toBe(60);
    // The other instance is untouched.
    expect(client.getQueryData<Instance[]>(instanceKeys.list)?.find((i) => i.id === 'b')?.progress).toBe(100);

    act(() => source().emit('worker.heartbeat', { type: 'worker.heartbeat', instance_id: 'b', worker_status: 'ready', engine_ready: true }));
    const b = client.getQueryData<Instance[]>(instanceKeys.list)?.find((i) => i.id === 'b');
    expect(b?.worker_status).toBe('ready');
    expect(b?.last_heartbeat_at).toBeTruthy();
    expect(client.getQueryData<{ engine_ready: boolean }>(instanceKeys.heartbeat('b'))?.engine_ready).toBe(true);
  });

  it('puts a usage drift verdict on the instance and refetches its timeline', () => {
    const { client, source } = setup();
    act(() => source().emit('snapshot', { instances: [instance('a', 'ready', 100)] }));
    const invalidate = vi.spyOn(client, 'invalidateQueries');
    const usage_reconciliation = {
      alerts: 1,
      checked_at: '2026-12-05T09:00:30Z',
      covered_seconds: 3600,
      drift_ratio: 0.02,
      engine_prompt: 1000,
      engine_generation: 500,
      proxy_prompt: 980,
      proxy_completion: 500,
      status: 'alert',
      window_start: '2026-12-05T08:00:00Z',
      window_end: '2026-12-05T09:00:00Z',
    };
    act(() => source().emit('instance.usage_drift', { type: 'instance.usage_drift', instance_id: 'a', usage_reconciliation }));
    expect(client.getQueryData<Instance>(instanceKeys.one('a'))?.usage_reconciliation?.status).toBe('alert');
    expect(client.getQueryData<Instance[]>(instanceKeys.list)?.[0]?.usage_reconciliation?.drift_ratio).toBe(0.02);
    expect(invalidate).toHaveBeenCalledWith({ queryKey: instanceKeys.actions('a') });
  });

  it('refetches the list for an instance it does not know, and drops archived ones', () => {
    const { client, source } = setup();
    act(() => source().emit('snapshot', { instances: [instance('a', 'terminated', 100)] }));
    const invalidate = vi.spyOn(client, 'invalidateQueries');
    act(() => source().emit('instance.updated', { instance_id: 'new', status: 'provisioning', progress: 0 }));
    expect(invalidate).toHaveBeenCalledWith({ queryKey: instanceKeys.list, exact: true });

    act(() => source().emit('instance.updated', { instance_id: 'a', status: 'archived', progress: 100 }));
    expect(client.getQueryData<Instance[]>(instanceKeys.list)).toEqual([]);
  });

  it('refetches the budgets and their alerts when a threshold is crossed', () => {
    const { client, source } = setup();
    const invalidate = vi.spyOn(client, 'invalidateQueries');
    act(() => source().emit('budget.alert', { type: 'budget.alert', alert_id: 7 }));
    expect(invalidate).toHaveBeenCalledWith({ queryKey: budgetKeys.list });
    expect(invalidate).toHaveBeenCalledWith({ queryKey: budgetKeys.alerts });
  });

  it('patches progress in place and refetches the full rows on a status change', () => {
    const { client, source } = setup();
    act(() => source().emit('snapshot', { instances: [instance('a', 'booting', 10)] }));
    const invalidate = vi.spyOn(client, 'invalidateQueries');
    act(() => source().emit('instance.updated', { instance_id: 'a', status: 'booting', progress: 25 }));
    expect(invalidate).not.toHaveBeenCalledWith({ queryKey: instanceKeys.list, exact: true });
    act(() => source().emit('instance.updated', { instance_id: 'a', status: 'installing', progress: 50 }));
    expect(invalidate).toHaveBeenCalledWith({ queryKey: instanceKeys.list, exact: true });
    expect(invalidate).toHaveBeenCalledWith({ queryKey: instanceKeys.one('a'), exact: true });
  });

  it('ignores malformed events', () => {
    const { client, source } = setup();
    act(() => source().emit('snapshot', { instances: [instance('a')] }));
    const listeners = (source() as unknown as { listeners: Map<string, ((e: MessageEvent) => void)[]> }).listeners;
    act(() => listeners.get('instance.updated')?.forEach((l) => l(new MessageEvent('instance.updated', { data: 'not json' }))));
    expect(client.getQueryData<Instance[]>(instanceKeys.list)?.[0]?.status).toBe('provisioning');
  });

  it('refreshes the session and reconnects when the stream is closed by an error', async () => {
    vi.useFakeTimers();
    try {
      const fetchMock = vi.fn(async () => new Response(JSON.stringify({ access_token: 't', expires_in: 900 }), { status: 200 }));
      vi.stubGlobal('fetch', fetchMock);
      const { hook, source } = setup();
      const first = source();
      act(() => first.fail(2));
      expect(hook.result.current).toBe('reconnecting');
      expect(first.closed).toBe(true);
      await act(async () => {
        await vi.advanceTimersByTimeAsync(1500);
      });
      expect(fetchMock).toHaveBeenCalledWith('/auth/refresh', expect.objectContaining({ method: 'POST' }));
      expect(FakeEventSource.opened).toHaveLength(2);
      act(() => source().open());
      expect(hook.result.current).toBe('live');
    } finally {
      vi.useRealTimers();
      vi.unstubAllGlobals();
    }
  });

  it('applies service.updated to the services list and page, and refetches its replicas and timeline', () => {
    const { client, source } = setup();
    const svc = (id: string): Service => ({
      id,
      name: `svc-${id}`,
      model_id: 'Qwen/Qwen2.5-0.5B-Instruct',
      mode: 'mono',
      state: 'active',
      min_replicas: 0,
      max_replicas: 3,
      revision: 1,
      outdated_replicas: 0,
      desired_replicas: 1,
      active_replicas: 1,
      idle_window_s: 900,
      scale_down_cooldown_s: 300,
      placements: [],
      created_at: '2026-12-06T10:00:00Z',
      updated_at: '2026-12-06T10:00:00Z',
    });
    client.setQueryData<Service[]>(serviceKeys.list, [svc('s1'), svc('s2')]);
    client.setQueryData<ServiceDetail>(serviceKeys.one('s1'), { ...svc('s1'), replicas: [{ ...instance('r1', 'booting', 30), service_id: 's1' }], replica_counts: { booting: 1 } });
    const invalidate = vi.spyOn(client, 'invalidateQueries');

    act(() =>
      source().emit('service.updated', { type: 'service.updated', organization_id: 'org-1', service_id: 's1', state: 'active', desired_replicas: 3, kind: 'scaled', reason: 'outstanding 9.2 per replica > 4 for 60 s: 1 → 3' }),
    );
    expect(client.getQueryData<Service[]>(serviceKeys.list)?.map((s) => [s.id, s.desired_replicas])).toEqual([
      ['s1', 3],
      ['s2', 1],
    ]);
    expect(client.getQueryData<ServiceDetail>(serviceKeys.one('s1'))?.desired_replicas).toBe(3);
    expect(invalidate).toHaveBeenCalledWith({ queryKey: serviceKeys.one('s1'), exact: true });
    expect(invalidate).toHaveBeenCalledWith({ queryKey: serviceKeys.events('s1'), exact: true });
    expect(invalidate).not.toHaveBeenCalledWith({ queryKey: serviceKeys.list, exact: true });

    act(() => source().emit('service.updated', { service_id: 's2', state: 'paused', desired_replicas: 0, kind: 'paused', reason: 'paused by a@b.c' }));
    expect(client.getQueryData<Service[]>(serviceKeys.list)?.find((s) => s.id === 's2')?.state).toBe('paused');
    // A state this build does not know is not written; an unknown service refetches the list.
    act(() => source().emit('service.updated', { service_id: 's2', state: 'hibernating', desired_replicas: 0, kind: 'updated', reason: '' }));
    expect(client.getQueryData<Service[]>(serviceKeys.list)?.find((s) => s.id === 's2')?.state).toBe('paused');
    act(() => source().emit('service.updated', { service_id: 'new', state: 'active', desired_replicas: 1, kind: 'created', reason: 'created' }));
    expect(invalidate).toHaveBeenCalledWith({ queryKey: serviceKeys.list, exact: true });

    // A replica's progress shows on its service's page; a new status refetches the service (its counts).
    invalidate.mockClear();
    act(() => source().emit('instance.updated', { instance_id: 'r1', status: 'booting', progress: 45 }));
    expect(client.getQueryData<ServiceDetail>(serviceKeys.one('s1'))?.replicas[0]?.progress).toBe(45);
    expect(invalidate).not.toHaveBeenCalledWith({ queryKey: serviceKeys.one('s1'), exact: true });
    act(() => source().emit('instance.updated', { instance_id: 'r1', status: 'ready', progress: 100 }));
    expect(client.getQueryData<ServiceDetail>(serviceKeys.one('s1'))?.replicas[0]?.status).toBe('ready');
    expect(invalidate).toHaveBeenCalledWith({ queryKey: serviceKeys.one('s1'), exact: true });
  });

  it('reconnects when the organization changes and closes on unmount', () => {
    const { hook, source } = setup('org-1');
    const first = source();
    hook.rerender({ s: 'org-2' });
    expect(first.closed).toBe(true);
    expect(FakeEventSource.opened).toHaveLength(2);
    const second = source();
    hook.unmount();
    expect(second.closed).toBe(true);
  });
});

describe('live notices', () => {
  it('tells an instance becoming ready or failing, nothing else', () => {
    expect(toastFor('i1', 'web', 'starting', 'ready')).toEqual({ tone: 'good', text: 'web is ready', to: '/instances/i1' });
    expect(toastFor('i1', 'web', 'installing', 'startup_failed')).toEqual({ tone: 'bad', text: 'web failed: startup failed', to: '/instances/i1' });
    expect(toastFor('i1', 'web', 'ready', 'ready')).toBeNull();
    expect(toastFor('i1', 'web', 'ready', 'draining')).toBeNull();
    expect(toastFor('i1', 'web', undefined, 'ready')).toBeNull();
  });
});
