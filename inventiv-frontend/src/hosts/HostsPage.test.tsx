import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router';
import type { Host, HostHistoryEntry, OrgRole } from '../api/types';
import { HostPage } from './HostPage';
import { HostsPage } from './HostsPage';
import { rememberSession } from '../api/session';

const HID = '0d7d0000-0000-4000-8000-000000000001';
const PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxxx inventiv-org-acme';

function host(patch: Partial<Host>): Host {
  return {
    id: HID,
    address: '10.0.0.12',
    ssh_port: 2222,
    ssh_user: 'ubuntu',
    label: 'gpu-box-1',
    pool: 'paris-rack-2',
    gpu_count: 2,
    gpu_model: 'NVIDIA L4',
    gpu_vram_mib: 23034,
    gpus_detected: true,
    hourly_cost_eur: '0.4500',
    status: 'verified',
    host_key_fingerprint: 'SHA256:abcdef',
    last_check: { ok: true, message: 'reached; host key SHA256:abcdef pinned', at: '2026-12-06T10:05:00Z' },
    created_at: '2026-12-06T10:00:00Z',
    updated_at: '2026-12-06T10:05:00Z',
    removed_at: null,
    seats: [],
    ...patch,
  };
}

const hosts: Host[] = [
  host({}),
  host({ id: 'b', label: 'old-box', address: 'old.example.com', ssh_port: 22, ssh_user: 'root', pool: 'lyon', gpu_count: 0, gpu_model: null, gpu_vram_mib: null, gpus_detected: false, hourly_cost_eur: null, status: 'registered', host_key_fingerprint: null, last_check: null, created_at: '2026-12-06T09:00:00Z' }),
  host({ id: 'c', label: 'busy-box', status: 'in_use', created_at: '2026-12-06T08:00:00Z', seats: [{ instance_id: 'i1', gpus: [0], slot: 0, releasing: false }] }),
  host({ id: 'd', label: 'quiet-box', status: 'draining', last_check: { ok: false, message: 'connection refused', at: '2026-12-06T10:06:00Z' }, created_at: '2026-12-06T07:00:00Z' }),
];

type Handler = (method: string, url: string, body: unknown) => Response | undefined;

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
const refusal = (status: number, code: string, message: string) => json({ error: { code, message, request_id: 'r1' } }, status);

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
      return handler(method, url, body) ?? refusal(404, 'NOT_FOUND', `no ${url}`);
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
          <Route path="/hosts" element={<HostsPage />} />
          <Route path="/hosts/:id" element={<HostPage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

// A logged-in browser: useMe asks the API only then.
beforeEach(() => rememberSession(true));

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
  window.localStorage.clear();
});

const listed: Handler = (_m, url) => (url === '/hosts?limit=200' ? json(hosts) : undefined);

describe('hosts list', () => {
  it('shows each host with its address, user, pool, GPUs, cost, status and last check; a member gets no action', async () => {
    serve('user', listed);
    renderAt('/hosts');
    const table = await screen.findByRole('table', { name: 'Hosts' });
    const row = (name: string) => within(table).getByRole('row', { name: new RegExp(name) });
    const box = row('gpu-box-1');
    for (const text of ['ubuntu@10.0.0.12:2222', 'paris-rack-2', '2 × NVIDIA L4 × 22.5 GiB', '0.45 EUR/h', 'verified']) expect(box.textContent).toContain(text);
    expect(within(box).getByRole('link', { name: 'gpu-box-1' }).getAttribute('href')).toBe(`/hosts/${HID}`);
    const old = row('old-box');
    for (const text of ['root@old.example.com:22', 'lyon', 'none', 'registered', 'never']) expect(old.textContent).toContain(text);
    expect(row('busy-box').textContent).toContain('in use');
    expect(row('gpu-box-1').textContent).not.toContain('failed');
    expect(row('quiet-box').textContent).toContain('failed');
    expect(within(row('quiet-box')).getByTitle('connection refused')).toBeTruthy();
    // A member reads: no registration, no action on any row.
    expect(screen.queryByRole('button', { name: 'Register a host' })).toBeNull();
    expect(screen.queryByRole('columnheader', { name: /Actions/ })).toBeNull();
    for (const action of ['Verify', 'Drain', 'Undrain', 'Remove']) expect(screen.queryByRole('button', { name: new RegExp(`^${action} `) })).toBeNull();
  });

  it('offers owners and admins the actions each status allows', async () => {
    serve('admin', listed);
    renderAt('/hosts');
    await screen.findByRole('table', { name: 'Hosts' });
    const names = (label: string) =>
      within(screen.getByRole('row', { name: new RegExp(label) }))
        .getAllByRole('button')
        .map((b) => b.getAttribute('aria-label'));
    expect(names('gpu-box-1')).toEqual(['Verify gpu-box-1', 'Drain gpu-box-1', 'Remove gpu-box-1']);
    // In use: not removable.
    expect(names('busy-box')).toEqual(['Verify busy-box', 'Drain busy-box']);
    expect(names('quiet-box')).toEqual(['Verify quiet-box', 'Undrain quiet-box', 'Remove quiet-box']);
    expect(screen.getByRole('button', { name: 'Register a host' })).toBeTruthy();
  });

  it('asks before removing, sends nothing when declined, and shows the refusal of a host in use', async () => {
    const calls = serve('owner', (method, url) => {
      if (method === 'DELETE') return refusal(409, 'HOST_IN_USE', 'the host holds instances: terminate them first');
      return listed(method, url, undefined);
    });
    const confirm = vi.spyOn(window, 'confirm').mockReturnValueOnce(false).mockReturnValueOnce(true);
    renderAt('/hosts');
    const remove = await screen.findByRole('button', { name: 'Remove gpu-box-1' });
    fireEvent.click(remove);
    expect(confirm).toHaveBeenCalledTimes(1);
    expect(confirm.mock.calls[0]?.[0]).toContain('Remove gpu-box-1 (10.0.0.12:2222)?');
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false);
    fireEvent.click(remove);
    expect((await screen.findByRole('alert')).textContent).toBe('the host holds instances: terminate them first');
    expect(calls.filter((c) => c.method === 'DELETE')).toEqual([{ method: 'DELETE', url: `/hosts/${HID}`, body: undefined }]);
  });

  it('verifies without asking and says what the verification found', async () => {
    const calls = serve('owner', (method, url) => {
      if (method === 'POST' && url === `/hosts/${HID}/verify`)
        return json(host({ status: 'unreachable', last_check: { ok: false, message: 'connection timed out after 5 s', at: '2026-12-06T11:00:00Z' } }));
      return listed(method, url, undefined);
    });
    const confirm = vi.spyOn(window, 'confirm');
    renderAt('/hosts');
    fireEvent.click(await screen.findByRole('button', { name: 'Verify gpu-box-1' }));
    const outcome = await screen.findByText(/connection timed out after 5 s/);
    expect(outcome.textContent).toContain('gpu-box-1: unreachable');
    expect(confirm).not.toHaveBeenCalled();
    expect(calls.filter((c) => c.method === 'POST').map((c) => c.url)).toEqual([`/hosts/${HID}/verify`]);
  });
});

describe('host registration', () => {
  it('shows the key to authorize, checks the bounds first, sends the body and shows the API refusal in its words', async () => {
    const calls = serve('owner', (method, url) => {
      if (url === '/organizations/current/ssh-key') return json({ public_key: PUBLIC_KEY, fingerprint: 'SHA256:orgkey' });
      if (method === 'POST' && url === '/hosts') return refusal(409, 'HOST_EXISTS', '10.0.0.12:2222 is already registered in this organization');
      return listed(method, url, undefined);
    });
    const writeText = vi.fn(async () => undefined);
    vi.stubGlobal('navigator', { ...navigator, clipboard: { writeText } });
    renderAt('/hosts');
    fireEvent.click(await screen.findByRole('button', { name: 'Register a host' }));
    const form = screen.getByRole('form', { name: 'Register a host' });
    expect(((await within(form).findByLabelText('Public key to authorize')) as HTMLInputElement).value).toBe(PUBLIC_KEY);
    expect(form.textContent).toContain('SHA256:orgkey');
    fireEvent.click(within(form).getByRole('button', { name: 'Copy' }));
    await waitFor(() => expect(writeText).toHaveBeenCalledWith(PUBLIC_KEY));

    const type = (label: string, value: string) => fireEvent.change(within(form).getByLabelText(label), { target: { value } });
    type('Label', ' gpu-box-1 ');
    type('Address', '-oProxyCommand=x');
    type('SSH port', '2222');
    type('SSH user', 'ubuntu');
    type('Pool', 'paris rack');
    type('GPUs', '2');
    type('Hourly cost (EUR)', '0.45678');
    fireEvent.click(within(form).getByRole('button', { name: 'Register' }));
    expect(within(form).getByText('Address: an IP address or a DNS name')).toBeTruthy();
    expect(within(form).getByText("Pool: 1 to 63 letters, digits, '-', '_', '.'")).toBeTruthy();
    expect(within(form).getByText('GPU model: required with GPUs')).toBeTruthy();
    expect(within(form).getByText('VRAM per GPU: required with GPUs')).toBeTruthy();
    expect(within(form).getByText(/^Hourly cost: a non-negative decimal/)).toBeTruthy();
    expect(within(form).getByLabelText('Address').getAttribute('aria-invalid')).toBe('true');
    expect(calls.some((c) => c.method === 'POST')).toBe(false);

    type('Address', '10.0.0.12');
    type('Pool', 'paris-rack-2');
    type('GPU model', ' NVIDIA L4 ');
    type('VRAM per GPU (MiB)', '24576');
    type('Hourly cost (EUR)', '0.45');
    fireEvent.click(within(form).getByRole('button', { name: 'Register' }));
    expect((await within(form).findByRole('alert')).textContent).toBe('10.0.0.12:2222 is already registered in this organization');
    expect(calls.filter((c) => c.method === 'POST')).toEqual([
      {
        method: 'POST',
        url: '/hosts',
        body: {
          label: 'gpu-box-1',
          address: '10.0.0.12',
          ssh_port: 2222,
          ssh_user: 'ubuntu',
          pool: 'paris-rack-2',
          gpu_count: 2,
          gpu_model: 'NVIDIA L4',
          gpu_vram_mib: 24576,
          hourly_cost_eur: '0.45',
        },
      },
    ]);
    // Still open, to correct and send again.
    expect(screen.getByRole('form', { name: 'Register a host' })).toBeTruthy();
  });

  it('closes on success and lists the new host', async () => {
    let registered = false;
    const calls = serve('admin', (method, url) => {
      if (url === '/organizations/current/ssh-key') return json({ public_key: PUBLIC_KEY, fingerprint: 'SHA256:orgkey' });
      if (method === 'POST' && url === '/hosts') {
        registered = true;
        return json(host({ status: 'registered', last_check: null }), 201);
      }
      if (url === '/hosts?limit=200') return json(registered ? [host({ status: 'registered', last_check: null })] : []);
      return undefined;
    });
    renderAt('/hosts');
    expect(await screen.findByText('No host yet: register one.')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Register a host' }));
    const form = screen.getByRole('form', { name: 'Register a host' });
    const type = (label: string, value: string) => fireEvent.change(within(form).getByLabelText(label), { target: { value } });
    type('Label', 'cpu-box');
    type('Address', 'box.example.com');
    type('SSH port', '');
    type('SSH user', 'deploy');
    type('Pool', 'lab');
    fireEvent.click(within(form).getByRole('button', { name: 'Register' }));
    const row = await screen.findByRole('row', { name: /gpu-box-1/ });
    expect(row.textContent).toContain('registered');
    expect(screen.queryByRole('form', { name: 'Register a host' })).toBeNull();
    expect(calls.find((c) => c.method === 'POST')?.body).toEqual({
      label: 'cpu-box',
      address: 'box.example.com',
      ssh_port: null,
      ssh_user: 'deploy',
      pool: 'lab',
      gpu_count: 0,
      gpu_model: null,
      gpu_vram_mib: null,
      hourly_cost_eur: null,
    });
  });
});

describe('host page', () => {
  const history: HostHistoryEntry[] = [
    { from_status: null, to_status: 'registered', reason: 'registered', actor_user_id: 'u', request_id: 'r0', at: '2026-12-06T10:00:00Z' },
    { from_status: 'registered', to_status: 'unreachable', reason: 'connection refused', actor_user_id: 'u', request_id: 'r1', at: '2026-12-06T10:01:00Z' },
    { from_status: 'unreachable', to_status: 'verified', reason: 'reached; host key SHA256:abcdef pinned', actor_user_id: null, request_id: null, at: '2026-12-06T10:05:00Z' },
  ];

  it('shows the host and its history newest first; a member gets no action', async () => {
    serve('user', (_m, url) => {
      if (url === `/hosts/${HID}`) return json(host({}));
      if (url === `/hosts/${HID}/history`) return json(history);
      return undefined;
    });
    renderAt(`/hosts/${HID}`);
    expect(await screen.findByRole('heading', { name: 'gpu-box-1' })).toBeTruthy();
    expect(screen.getByText('ubuntu@10.0.0.12:2222')).toBeTruthy();
    expect(screen.getByText('2 × NVIDIA L4 × 22.5 GiB (read with nvidia-smi)')).toBeTruthy();
    expect(screen.getByText('SHA256:abcdef')).toBeTruthy();
    const timeline = await screen.findByRole('list', { name: 'Host history' });
    const items = within(timeline).getAllByRole('listitem').map((li) => li.textContent ?? '');
    expect(items).toHaveLength(3);
    expect(items[0]).toContain('unreachable → verified');
    expect(items[0]).toContain('by the control plane');
    expect(items[1]).toContain('connection refused');
    expect(items[1]).toContain('by a member');
    expect(items[2]).toContain('registered');
    for (const name of ['Verify gpu-box-1', 'Drain gpu-box-1', 'Remove gpu-box-1']) expect(screen.queryByRole('button', { name })).toBeNull();
  });

  it('shows the refusal of a changed host key in the API’s words', async () => {
    serve('owner', (method, url) => {
      if (method === 'POST' && url === `/hosts/${HID}/verify`) return refusal(409, 'HOST_KEY_CHANGED', 'the host presented another SSH host key than the pinned one: refused');
      if (url === `/hosts/${HID}`) return json(host({}));
      if (url === `/hosts/${HID}/history`) return json(history);
      return undefined;
    });
    renderAt(`/hosts/${HID}`);
    fireEvent.click(await screen.findByRole('button', { name: 'Verify gpu-box-1' }));
    expect((await screen.findByRole('alert')).textContent).toBe('the host presented another SSH host key than the pinned one: refused');
  });

  it('says when the host is not in this organization', async () => {
    serve('owner', () => undefined);
    renderAt(`/hosts/${HID}`);
    expect(await screen.findByText('No such host in this organization.')).toBeTruthy();
  });
});
