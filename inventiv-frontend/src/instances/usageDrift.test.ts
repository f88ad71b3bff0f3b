import { describe, expect, it } from 'vitest';
import type { UsageReconciliation } from '../api/types';
import { driftView, formatDriftPercent, formatTokens } from './usageDrift';

function reconciliation(patch: Partial<UsageReconciliation>): UsageReconciliation {
  return {
    alerts: 0,
    checked_at: '2026-12-05T09:00:30Z',
    covered_seconds: 3600,
    drift_ratio: 0,
    engine_prompt: 120000,
    engine_generation: 45000,
    proxy_prompt: 120000,
    proxy_completion: 45000,
    status: 'ok',
    window_start: '2026-12-05T08:00:00Z',
    window_end: '2026-12-05T09:00:00Z',
    ...patch,
  };
}

describe('formatDriftPercent', () => {
  it('shows two decimals, a tiny drift as under 0.01 %, and nonsense as a dash', () => {
    expect(formatDriftPercent(0)).toBe('0.00 %');
    expect(formatDriftPercent(0.005)).toBe('0.50 %');
    expect(formatDriftPercent(0.0123)).toBe('1.23 %');
    expect(formatDriftPercent(0.00001)).toBe('< 0.01 %');
    expect(formatDriftPercent(2)).toBe('200.00 %');
    expect(formatDriftPercent(-1)).toBe('—');
    expect(formatDriftPercent(Number.NaN)).toBe('—');
  });
});

describe('formatTokens', () => {
  it('groups thousands', () => {
    expect(formatTokens(1234567, 0)).toBe('1,234,567 prompt / 0 generated');
  });
});

describe('driftView', () => {
  it('has nothing to show before the first reconciliation', () => {
    expect(driftView(null)).toBeNull();
    expect(driftView(undefined)).toBeNull();
  });

  it('reads each status as a verdict with its tone', () => {
    const cases: [UsageReconciliation['status'], string, string, string][] = [
      ['ok', 'in agreement', 'ok', '0.20 %'],
      ['alert', 'drift alert', 'bad', '0.20 %'],
      ['insufficient_data', 'not enough traffic', 'off', '—'],
    ];
    for (const [status, label, tone, drift] of cases) {
      const view = driftView(reconciliation({ status, drift_ratio: 0.002 }));
      expect(view).toMatchObject({ label, tone, drift });
    }
  });

  it('shows both counts and the window', () => {
    const view = driftView(reconciliation({ proxy_prompt: 100000, status: 'alert', drift_ratio: 1 / 6 }));
    expect(view?.engine).toBe('120,000 prompt / 45,000 generated');
    expect(view?.proxy).toBe('100,000 prompt / 45,000 generated');
    expect(view?.drift).toBe('16.67 %');
    expect(view?.window).toBe('60 min ending 09:00 UTC');
  });
});
