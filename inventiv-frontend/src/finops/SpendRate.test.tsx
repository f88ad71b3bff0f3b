import { cleanup, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router';
import type { OrgRole } from '../api/types';
import { rememberSession } from '../api/session';
import { SpendRate } from './SpendRate';

const cost = {
  running_instances: 2,
  per_minute_eur: '0.0500',
  per_hour_eur: '3.0000',
  per_day_eur: '72.0000',
  per_30_days_eur: '2160.0000',
  per_365_days_eur: '26280.0000',
  month_to_date_eur: '100.0000',
  instances: [],
};

/** Answers GET /auth/me with `role` and the burn rate; returns the paths asked. */
function serve(role: OrgRole) {
  const calls: string[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string) => {
      calls.push(url);
      const json = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
      if (url === '/auth/me') {
        const org = { id: 'o', kind: 'team', name: 'Acme', role, slug: 'acme' };
        return json({ current_organization: org, memberships: [org], session_id: 's', user: { id: 'u', email: 'someone@example.com' } });
      }
      return json(cost);
    }),
  );
  return calls;
}

function renderSpend() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter>
        <SpendRate />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

beforeEach(() => {
  rememberSession(true);
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date('2026-12-31T20:00:00Z'));
});

afterEach(() => {
  cleanup();
  vi.useRealTimers();
  vi.unstubAllGlobals();
  window.localStorage.clear();
});

describe('the top bar spend', () => {
  it('shows a manager the hourly rate and the month-end forecast, linked to FinOps', async () => {
    serve('manager');
    renderSpend();
    // 100 EUR so far + 3 EUR/h × the 4 hours left in December.
    const link = await screen.findByRole('link', { name: /3\.00 EUR\/h/ });
    expect(link.textContent).toBe('3.00 EUR/h · ~112.00 EUR by month end');
    expect(link.getAttribute('href')).toBe('/finops');
  });

  it('asks nothing and shows nothing to a role that may not read FinOps', async () => {
    const calls = serve('admin');
    const { container } = renderSpend();
    await waitFor(() => expect(calls).toContain('/auth/me'));
    expect(container.textContent).toBe('');
    expect(calls).not.toContain('/finops/cost/current');
  });
});
