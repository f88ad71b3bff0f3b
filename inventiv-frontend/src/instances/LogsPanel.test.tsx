import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import type { ActionLogEntry, InstanceLogs, InstanceStatus } from '../api/types';
import { LogsPanel } from './LogsPanel';

const ID = '0b7d0000-0000-4000-8000-000000000001';

const logs: InstanceLogs = {
  events: [
    { ts: '2026-12-06T10:00:01.250Z', event: 'engine_ready', level: 'info', detail: '{"port":8001}', truncated: false },
    { ts: '2026-12-06T10:00:02.500Z', event: 'heartbeat_failed', level: 'error', detail: '{"error":"refused"}', truncated: false },
  ],
  dropped: 1,
};

function json(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

function renderPanel(status: InstanceStatus = 'ready', actions?: ActionLogEntry[]) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <LogsPanel instanceId={ID} status={status} actions={actions} />
    </QueryClientProvider>,
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe('worker log panel', () => {
  it('shows the tail with each line coloured by its level, then follows with since', async () => {
    const urls: string[] = [];
    const next = { events: [{ ts: '2026-12-06T10:00:03.000Z', event: 'draining', level: 'warning', detail: '', truncated: false }], dropped: 0 };
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        urls.push(url);
        return json(200, urls.length === 1 ? logs : next);
      }),
    );
    renderPanel();
    const box = await screen.findByRole('log', { name: 'Worker log' });
    expect(urls[0]).toBe(`/instances/${ID}/logs?tail=200`);
    const lines = box.querySelectorAll('.log-line');
    expect(lines).toHaveLength(2);
    expect(lines[1]?.className).toContain('log-error');
    expect(lines[1]?.textContent).toContain('heartbeat_failed');
    expect(screen.getByText(/1 malformed entry left out/)).toBeTruthy();

    fireEvent.click(screen.getByRole('checkbox', { name: 'Follow' }));
    await waitFor(() => expect(box.querySelectorAll('.log-line')).toHaveLength(3), { timeout: 5000 });
    expect(urls[1]).toBe(`/instances/${ID}/logs?tail=1000&since=2026-12-06T10%3A00%3A02.500Z`);
    expect(box.querySelectorAll('.log-line')[2]?.className).toContain('log-warning');
  });

  it('does not ask before the instance has a worker, nor after it is terminated', async () => {
    const fetch = vi.fn(async () => json(200, logs));
    vi.stubGlobal('fetch', fetch);
    for (const status of ['provisioning', 'installing', 'terminated'] as const) {
      renderPanel(status);
      expect(screen.getByText(/No worker to read/)).toBeTruthy();
      cleanup();
    }
    expect(fetch).not.toHaveBeenCalled();
  });

  it('says when the API finds no worker (409), without an error', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => json(409, { error: { code: 'NO_WORKER', message: 'the instance has no worker to read logs from: it is not installed yet', request_id: 'r1' } })));
    renderPanel();
    await screen.findByText(/No worker to read yet/);
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('says when the worker is unreachable, with the request id to quote', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => json(504, { error: { code: 'WORKER_TIMEOUT', message: 'the worker did not answer within 10 s', request_id: 'req-42' } })));
    renderPanel();
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('Worker unreachable: the worker did not answer within 10 s');
    expect(alert.textContent).toContain('req-42');
  });

  it("shows the bootstrap's lines before the worker answers, and filters by source", async () => {
    const install = {
      id: 7,
      action_type: 'WORKER_SSH_PACKAGES',
      status: 'success',
      started_at: '2026-12-06T09:59:00.000Z',
      finished_at: '2026-12-06T09:59:30.000Z',
      duration_ms: 30_000,
      error_code: null,
      error_message: null,
      metadata: { output_tail: ['Setting up haproxy'] },
      request_id: null,
    } as unknown as ActionLogEntry;
    vi.stubGlobal('fetch', vi.fn(async () => json(200, { events: [logs.events[0], { ts: '2026-12-06T10:00:03.000Z', event: 'engine_output', level: 'info', detail: '{"line":"GET /health 200"}', truncated: false }], dropped: 0 })));
    renderPanel('installing', [install]);
    const box = screen.getByRole('log', { name: 'Worker log' });
    expect(box.textContent).toContain('Setting up haproxy');
    cleanup();

    renderPanel('ready', [install]);
    await waitFor(() => expect(screen.getByRole('log', { name: 'Worker log' }).querySelectorAll('.log-line')).toHaveLength(3));
    fireEvent.change(screen.getByRole('combobox', { name: 'Source' }), { target: { value: 'engine' } });
    const lines = screen.getByRole('log', { name: 'Worker log' }).querySelectorAll('.log-line');
    expect([...lines].map((l) => l.querySelector('.log-detail')?.textContent)).toEqual(['GET /health 200']);
    expect(screen.getByRole('button', { name: 'Download' })).toBeTruthy();
  });
});
