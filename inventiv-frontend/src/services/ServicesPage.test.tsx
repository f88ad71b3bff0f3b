import { cleanup, fireEvent, render, screen, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router';
import type { Instance, OrgRole, Service, ServiceDetail, ServiceEvent } from '../api/types';
import { ServicePage } from './ServicePage';
import { ServicesPage } from './ServicesPage';
import { rememberSession } from '../api/session';

const SID = '0c7d0000-0000-4000-8000-000000000001';

function service(patch: Partial<Service>): Service {
  return {
    id: SID,
    name: 'chat',
    model_id: 'Qwen/Qwen2.5-0.5B-Instruct',
    mode: 'mono',
    state: 'active',
    min_replicas: 1,
    max_replicas: 3,
    desired_replicas: 1,
    active_replicas: 1,
    target_outstanding: 4,
    target_ttft_p95_ms: null,
    idle_window_s: 900,
    scale_down_cooldown_s: 300,
    gpu_hours_cap: null,
    eur_cap: null,
    placements: [
      { provider: 'mock', zone: 'mock-zone-1', instance_type: 'mock-1gpu-24g' },
      { provider: 'mock', zone: 'mock-zone-2', instance_type: 'mock-1gpu-24g' },
    ],
    revision: 1,
    outdated_replicas: 0,
    created_at: '2026-12-06T10:00:00Z',
    updated_at: '2026-12-06T10:00:00Z',
    ...patch,
  };
}

const replica: Instance = {
  id: '0b7d0000-0000-4000-8000-000000000009',
  name: 'chat #1',
  provider: 'mock',
  zone: 'mock-zone-1',
  instance_type: 'mock-1gpu-24g',
  model_id: 'Qwen/Qwen2.5-0.5B-Instruct',
  mode: 'mono',
  status: 'ready',
  progress: 100,
  cost_so_far_eur: '0.0000',
  agent_version_mismatch: false,
  created_at: '2026-12-06T10:00:01Z',
  updated_at: '2026-12-06T10:00:01Z',
  service_id: SID,
  service_revision: 1,
};

const detail = (patch: Partial<Service> = {}): ServiceDetail => ({ ...service(patch), replicas: [replica], replica_counts: { ready: 1 } });

const events: ServiceEvent[] = [
  { id: 3, kind: 'scaled', at: '2026-12-06T10:05:00Z', from_replicas: 1, to_replicas: 2, reason: 'outstanding 9.2 per replica > 4 for 60 s: 1 → 2' },
  { id: 2, kind: 'placement_failed', at: '2026-12-06T10:03:00Z', from_replicas: null, to_replicas: null, reason: 'placements[0]: mock-zone-1 refused: capacity' },
  { id: 1, kind: 'created', at: '2026-12-06T10:00:00Z', from_replicas: 0, to_replicas: 1, reason: 'created by owner@example.com' },
];

type Handler = (method: string, url: string, body: unknown) => Response | undefined;

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

/** Answers /auth/me with `role`, then `handler`; records every call. */
function serve(role: OrgRole, handler: Handler) {
  const calls: { method: string; url: string; body: unknown }[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string, init?: RequestInit) => {
      const method = init?.method ?? 'GET';
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      calls.push({ method, url, body });
      if (url === '/auth/me') {
        const org = { id: 'o', kind: 'team', name: 'Acme', role, slug: 'acme' };
        return json({ current_organization: org, memberships: [org], session_id: 's', user: { id: 'u', email: 'owner@example.com' } });
      }
      return handler(method, url, body) ?? json({ error: { code: 'NOT_FOUND', message: `no ${url}`, request_id: 'r' } }, 404);
    }),
  );
  return calls;
}

function renderAt(path: string) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <Routes>
          <Route path="/services" element={<ServicesPage />} />
          <Route path="/services/:id" element={<ServicePage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return client;
}

// A logged-in browser: useMe asks the API only then.
beforeEach(() => rememberSession(true));

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.localStorage.clear();
});

describe('services list', () => {
  it('shows each service with its state, replicas and bounds, and a cold badge only for an active one at zero with min 0', async () => {
    serve('user', (_m, url) =>
      url.startsWith('/services?')
        ? json([
            service({ id: 'a', name: 'cold-one', min_replicas: 0, desired_replicas: 0, active_replicas: 0, created_at: '2026-12-06T10:00:03Z' }),
            service({ id: 'b', name: 'warm-one', min_replicas: 0, max_replicas: 4, desired_replicas: 2, active_replicas: 1, created_at: '2026-12-06T10:00:02Z' }),
            service({ id: 'd', name: 'starting-one', min_replicas: 1, desired_replicas: 1, active_replicas: 0, created_at: '2026-12-06T10:00:00Z' }),
            service({ id: 'c', name: 'paused-one', state: 'paused', min_replicas: 0, desired_replicas: 0, active_replicas: 0, created_at: '2026-12-06T10:00:01Z' }),
          ])
        : undefined,
    );
    renderAt('/services');
    const table = await screen.findByRole('table', { name: 'Services' });
    const row = (name: string) => within(table).getByRole('row', { name: new RegExp(name) });
    expect(row('cold-one').textContent).toContain('cold');
    expect(row('cold-one').textContent).toContain('0 / 0 (0–3)');
    expect(row('warm-one').textContent).not.toContain('cold');
    expect(row('warm-one').textContent).toContain('1 / 2 (0–4)');
    expect(row('paused-one').textContent).toContain('paused');
    expect(row('paused-one').textContent).not.toContain('cold');
    expect(row('starting-one').textContent).not.toContain('cold');
    expect(within(row('cold-one')).getByRole('link', { name: 'cold-one' }).getAttribute('href')).toBe('/services/a');
    // A member reads, and creates nothing.
    expect(screen.queryByRole('button', { name: 'Create a service' })).toBeNull();
  });

  it('offers the creation to owners and admins', async () => {
    serve('admin', (_m, url) => (url.startsWith('/services?') ? json([]) : undefined));
    renderAt('/services');
    expect(await screen.findByRole('button', { name: 'Create a service' })).toBeTruthy();
  });
});

describe('service page', () => {
  it('shows the replicas with their status and link, and the timeline newest first with reasons', async () => {
    const requests = [7, 9].map((n, i) => ({ minute: `2026-12-06T10:0${i}:00Z`, requests: n, errors: 0, prompt_tokens: 10 * n, completion_tokens: 20 * n }));
    serve('user', (_m, url) => {
      if (url === `/services/${SID}`) return json(detail());
      if (url.startsWith(`/services/${SID}/events`)) return json(events);
      if (url === `/instances/${replica.id}/metrics?minutes=60`) return json({ instance_id: replica.id, gpu: [], system: [], requests });
      return undefined;
    });
    renderAt(`/services/${SID}`);
    const replicas = await screen.findByRole('table', { name: 'Replicas' });
    const row = within(replicas).getByRole('row', { name: /chat #1/ });
    expect(row.textContent).toContain('ready');
    expect(within(row).getByRole('link', { name: 'chat #1' }).getAttribute('href')).toBe(`/instances/${replica.id}`);
    const timeline = await screen.findByRole('list', { name: 'Service timeline' });
    const items = within(timeline).getAllByRole('listitem').map((li) => li.textContent ?? '');
    expect(items).toHaveLength(3);
    expect(items[0]).toContain('scaled');
    expect(items[0]).toContain('1 → 2');
    expect(items[0]).toContain('outstanding 9.2 per replica > 4 for 60 s: 1 → 2');
    expect(items[1]).toContain('placement failed');
    expect(items[1]).toContain('placements[0]: mock-zone-1 refused: capacity');
    expect(items[2]).toContain('created');
    expect(screen.getByRole('img', { name: /Desired and counted replicas.*Desired: 2 replicas/ })).toBeTruthy();
    expect(await screen.findByRole('img', { name: 'Requests per minute, all replicas (last hour), latest: Requests: 9 req' })).toBeTruthy();
    expect(within(screen.getByRole('list', { name: 'Placements' })).getAllByRole('listitem').map((li) => li.textContent)).toEqual([
      'mock / mock-zone-1 / mock-1gpu-24g',
      'mock / mock-zone-2 / mock-1gpu-24g',
    ]);
    // A member reads: no action, no editing.
    for (const name of ['Pause', 'Resume', 'Delete', 'Edit policy', 'Roll out']) expect(screen.queryByRole('button', { name })).toBeNull();
  });

  it('refuses a minimum above the maximum before sending, then shows the API refusal in its words', async () => {
    const calls = serve('owner', (method, url) => {
      if (method === 'PATCH') return json({ error: { code: 'QUOTA_EXCEEDED', message: 'raising to 3 replicas would exceed the GPU quota of the organization', request_id: 'r1' } }, 403);
      if (url === `/services/${SID}`) return json(detail());
      if (url.startsWith(`/services/${SID}/events`)) return json(events);
      return undefined;
    });
    renderAt(`/services/${SID}`);
    expect(await screen.findByRole('button', { name: 'Pause' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Delete' })).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Edit policy' }));
    const form = screen.getByRole('form', { name: 'Edit the policy' });
    fireEvent.change(within(form).getByLabelText('Minimum replicas'), { target: { value: '3' } });
    fireEvent.change(within(form).getByLabelText('Maximum replicas'), { target: { value: '2' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save policy' }));
    expect(within(form).getByText('Minimum replicas: at most the maximum (2)')).toBeTruthy();
    expect(within(form).getByLabelText('Minimum replicas').getAttribute('aria-invalid')).toBe('true');
    expect(calls.some((c) => c.method === 'PATCH')).toBe(false);

    fireEvent.change(within(form).getByLabelText('Maximum replicas'), { target: { value: '17' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save policy' }));
    expect(within(form).getByText('Maximum replicas: 1 to 16')).toBeTruthy();
    expect(calls.some((c) => c.method === 'PATCH')).toBe(false);

    fireEvent.change(within(form).getByLabelText('Maximum replicas'), { target: { value: '4' } });
    fireEvent.change(within(form).getByLabelText('EUR cap per month'), { target: { value: '999' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save policy' }));
    const alert = await within(form).findByRole('alert');
    expect(alert.textContent).toBe('raising to 3 replicas would exceed the GPU quota of the organization');
    expect(calls.find((c) => c.method === 'PATCH')).toEqual({
      method: 'PATCH',
      url: `/services/${SID}`,
      body: {
        min_replicas: 3,
        max_replicas: 4,
        target_outstanding: 4,
        target_ttft_p95_ms: null,
        idle_window_s: 900,
        scale_down_cooldown_s: 300,
        gpu_hours_cap: null,
        eur_cap: '999',
      },
    });
  });

  it('saves a policy and shows the service the API answers', async () => {
    serve('admin', (method, url, body) => {
      if (method === 'PATCH') return json(detail(body as Partial<Service>));
      if (url === `/services/${SID}`) return json(detail());
      if (url.startsWith(`/services/${SID}/events`)) return json(events);
      return undefined;
    });
    renderAt(`/services/${SID}`);
    fireEvent.click(await screen.findByRole('button', { name: 'Edit policy' }));
    const form = screen.getByRole('form', { name: 'Edit the policy' });
    fireEvent.change(within(form).getByLabelText('Minimum replicas'), { target: { value: '0' } });
    fireEvent.change(within(form).getByLabelText('Target TTFT p95 (ms)'), { target: { value: '2000' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save policy' }));
    expect(await screen.findByText('4 outstanding · 2000 ms p95')).toBeTruthy();
    expect(screen.queryByRole('form', { name: 'Edit the policy' })).toBeNull();
    expect(screen.getByText('0 to 3 replicas')).toBeTruthy();
  });
  it('starts a rollout with its reason and marks the outdated replicas', async () => {
    const calls = serve('owner', (method, url) => {
      if (method === 'POST' && url === `/services/${SID}/rollout`) return json(detail({ revision: 2, outdated_replicas: 1 }));
      if (url === `/services/${SID}`) return json(detail());
      if (url.startsWith(`/services/${SID}/events`)) return json(events);
      return undefined;
    });
    renderAt(`/services/${SID}`);
    fireEvent.click(await screen.findByRole('button', { name: 'Roll out' }));
    const form = screen.getByRole('form', { name: 'Roll out' });
    expect(form.textContent).toContain('each new replica is ready before an old one drains');
    fireEvent.change(within(form).getByLabelText('Reason (optional)'), { target: { value: '  vLLM 0.7 ' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Start the rollout' }));
    expect(await screen.findByText('2 — rollout under way: 1 outdated replica(s) left')).toBeTruthy();
    expect(screen.queryByRole('form', { name: 'Roll out' })).toBeNull();
    expect(calls.find((c) => c.method === 'POST')).toEqual({ method: 'POST', url: `/services/${SID}/rollout`, body: { reason: 'vLLM 0.7' } });
    const row = within(screen.getByRole('table', { name: 'Replicas' })).getByRole('row', { name: /chat #1/ });
    expect(row.textContent).toContain('1 (outdated)');
  });
});
