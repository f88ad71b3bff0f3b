import { cleanup, fireEvent, render, screen, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import type { MonthStatement, OrgRole } from '../api/types';
import { MonthStatementCard } from './MonthStatementCard';
import { rememberSession } from '../api/session';

const INSTANCE = '0b7d0000-0000-4000-8000-000000000001';

const totals = { gpu_eur: '0.00', debit_eur: '0.00', credit_eur: '0.00', adjustments_eur: '-1.04', total_eur: '-1.04' };
const adjustment = {
  kind: 'adjustment',
  label: 'GPU time, mock mock-1gpu-24g',
  source_month: '2026-03',
  gpu_seconds: '-1785',
  requests: null,
  tokens: null,
  exact_eur: '-1.04125',
  amount_eur: '-1.04',
  adjustment_id: '0b7e0000-0000-4000-8000-000000000002',
  instance_id: INSTANCE,
  reason: `instance ${INSTANCE} ended at 2026-03-31T23:30:15.000000Z: its end time was recorded late`,
};

function statement(closed: boolean): MonthStatement {
  return {
    month: '2026-04',
    closed: closed ? { closed_at: '2026-05-02T09:00:00Z', closed_by_email: 'owner@example.com', note: 'April books' } : null,
    totals,
    lines: [adjustment],
    corrections: [
      {
        id: '0b7e0000-0000-4000-8000-000000000003',
        kind: 'late_termination',
        label: 'GPU time, mock mock-1gpu-24g',
        instance_id: INSTANCE,
        period_start: '2026-04-01T00:00:00Z',
        period_end: '2026-04-01T01:00:00Z',
        gpu_seconds: '-3600',
        amount_eur: '-2.1',
        reason: 'reopened in place',
        recorded_by: 'cost job',
        recorded_at: '2026-04-01T01:00:00Z',
      },
    ],
  };
}

/** Answers GET /auth/me with `role`, the statement, and a close that returns it closed. */
function serve(role: OrgRole, closed: boolean) {
  const calls: string[] = [];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string, init?: RequestInit) => {
      calls.push(`${init?.method ?? 'GET'} ${url}`);
      const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
      if (url === '/auth/me') {
        const org = { id: 'o', kind: 'team', name: 'Acme', role, slug: 'acme' };
        return json({ current_organization: org, memberships: [org], session_id: 's', user: { id: 'u', email: 'owner@example.com' } });
      }
      if (url.endsWith('/close')) return json(statement(true), 201);
      return json(statement(closed));
    }),
  );
  return calls;
}

function renderCard() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MonthStatementCard month="2026-04" />
    </QueryClientProvider>,
  );
}

// A logged-in browser: useMe asks the API only then.
beforeEach(() => rememberSession(true));

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.localStorage.clear();
});

describe('billable statement', () => {
  it('shows a closed month as a snapshot, with its adjustment lines, corrections and exports', async () => {
    serve('owner', true);
    renderCard();
    const marker = await screen.findByRole('status', { name: 'Month status' });
    expect(marker.textContent).toContain('Closed');
    expect(marker.textContent).toContain('owner@example.com');
    expect(marker.textContent).toContain('April books');
    const row = within(screen.getByRole('table', { name: 'Billable statement lines' })).getByRole('row', { name: /Adjustment/ });
    expect(row.textContent).toContain('for 2026-03');
    expect(row.textContent).toContain('ended at 2026-03-31T23:30:15');
    expect(row.textContent).toContain('-1.04 EUR');
    expect(row.textContent).toContain('-1785 GPU s');
    expect(within(screen.getByLabelText('Statement totals')).getAllByText('-1.04 EUR')).toHaveLength(2);
    expect(screen.getByLabelText('Corrections of this month').textContent).toContain('-2.10 EUR');
    expect(screen.getByRole('link', { name: 'Export statement as CSV' }).getAttribute('href')).toBe('/finops/statements/2026-04?format=csv');
    expect(screen.getByRole('link', { name: 'Export statement as JSON' }).getAttribute('href')).toBe('/finops/statements/2026-04?format=json');
    expect(screen.queryByRole('button', { name: /Close/ })).toBeNull();
  });

  it('lets an owner close an open month that is over', async () => {
    const calls = serve('owner', false);
    renderCard();
    const button = await screen.findByRole('button', { name: 'Close 2026-04' });
    fireEvent.change(screen.getByLabelText('Note (optional)'), { target: { value: 'April books' } });
    fireEvent.click(button);
    await screen.findByText('Closed');
    expect(calls).toContain('POST /finops/statements/2026-04/close');
  });

  it('gives a manager no close button', async () => {
    serve('manager', false);
    renderCard();
    await screen.findByText('Open');
    await screen.findByText(/can be closed/);
    expect(screen.queryByRole('button', { name: 'Close 2026-04' })).toBeNull();
  });
});
