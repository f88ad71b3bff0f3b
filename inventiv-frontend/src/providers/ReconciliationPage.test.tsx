import { cleanup, render, screen, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router';
import type { ReconciliationReport } from '../api/types';
import { ReconciliationPage } from './ReconciliationPage';

const INSTANCE = '0b7d0000-0000-4000-8000-000000000001';

const report: ReconciliationReport = {
  provider: 'scaleway',
  generated_at: '2026-11-23T12:00:00Z',
  grace_seconds: 1800,
  resources: [
    { kind: 'server', provider_id: 'srv-orphan', zone: 'fr-par-2', created_at: '2026-11-23T10:00:00Z', verdict: 'delete' },
    { kind: 'volume', provider_id: 'vol-owned', zone: 'fr-par-2', instance_id: INSTANCE, created_at: '2026-11-23T11:00:00Z', verdict: 'owned' },
    { kind: 'server', provider_id: 'srv-foreign', zone: 'fr-par-2', created_at: '2026-11-23T11:00:00Z', verdict: 'untagged' },
  ],
  vanished_instances: [INSTANCE],
  missing_volumes: ['vol-gone'],
};

function answer(status: number, body: unknown) {
  vi.stubGlobal('fetch', vi.fn(async () => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })));
}

function renderPage() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter>
        <ReconciliationPage />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.localStorage.clear();
});

describe('reconciliation page', () => {
  it('shows each resource with its verdict and reason, the counts and what vanished', async () => {
    answer(200, report);
    renderPage();
    const summary = await screen.findByTestId('reconciliation-summary');
    expect(summary.textContent).toMatch(/^1 to delete · 1 kept · 1 never touched · 2 missing — grace window 30 min/);
    const table = screen.getByRole('table', { name: 'Reconciliation report' });
    const orphan = within(table).getByRole('row', { name: /srv-orphan/ });
    expect(orphan.textContent).toContain('delete');
    expect(orphan.textContent).toContain('older than the grace window');
    expect(within(table).getByRole('row', { name: /srv-foreign/ }).textContent).toContain('Not created by Inventiv: never touched');
    expect(within(table).getByRole('row', { name: /vol-owned/ }).textContent).toContain('Belongs to a live instance');
    expect(screen.getByText('vol-gone')).toBeTruthy();
    expect(screen.getByRole('link', { name: INSTANCE }).getAttribute('href')).toBe(`/instances/${INSTANCE}`);
  });

  it('shows an empty state, not an error, without credentials (409 PROVIDER_NOT_CONFIGURED)', async () => {
    answer(409, { error: { code: 'PROVIDER_NOT_CONFIGURED', message: 'set the organization’s scaleway credentials first', request_id: 'r1' } });
    renderPage();
    await screen.findByText(/No Scaleway credentials for this organization/);
    expect(screen.getByRole('link', { name: 'Set them' }).getAttribute('href')).toBe('/settings/providers');
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('shows another failure as an error (503: the provider did not answer)', async () => {
    answer(503, { error: { code: 'SERVICE_UNAVAILABLE', message: 'scaleway did not answer: PROVIDER_UNAVAILABLE', request_id: 'r2' } });
    renderPage();
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('scaleway did not answer: PROVIDER_UNAVAILABLE');
  });
});
