// The Rust source itself (vite.config.ts allows reading it): the bounds cannot drift unnoticed.
import rust from '../../../inventiv-common/src/service.rs?raw';
import type { ServiceEvent } from '../api/types';
import { BOUNDS, DESIRED_KINDS, EMPTY_POLICY, REPLICA_KINDS, isCold, parsePolicy, requestsPerMinute, stepSeries, type PolicyForm } from './policy';

function constant(name: string): number {
  const m = new RegExp(`pub const ${name}: \\w+ = ([\\d_.]+);`).exec(rust);
  if (!m?.[1]) throw new Error(`${name} not found in service.rs`);
  return Number(m[1].replace(/_/g, ''));
}

const form = (patch: Partial<PolicyForm>): PolicyForm => ({ ...EMPTY_POLICY, ...patch });
const refusal = (patch: Partial<PolicyForm>) => {
  const parsed = parsePolicy(form(patch));
  return parsed.ok ? null : parsed.errors;
};

describe('service policy form', () => {
  it('has the bounds and defaults of inventiv-common/src/service.rs', () => {
    expect(BOUNDS.maxReplicas).toBe(constant('MAX_REPLICAS'));
    expect(BOUNDS.maxTargetOutstanding).toBe(constant('MAX_TARGET_OUTSTANDING'));
    expect(BOUNDS.maxTargetTtftP95Ms).toBe(constant('MAX_TARGET_TTFT_P95_MS'));
    expect(BOUNDS.maxIdleWindowS).toBe(constant('MAX_IDLE_WINDOW_S'));
    expect(BOUNDS.maxScaleDownCooldownS).toBe(constant('MAX_SCALE_DOWN_COOLDOWN_S'));
    expect(BOUNDS.defaultIdleWindowS).toBe(constant('DEFAULT_IDLE_WINDOW_S'));
    expect(BOUNDS.defaultScaleDownCooldownS).toBe(constant('DEFAULT_SCALE_DOWN_COOLDOWN_S'));
  });

  it('takes a policy within the bounds, empty optional fields as none', () => {
    expect(parsePolicy(form({ min_replicas: '0', max_replicas: '16', target_outstanding: '4.5', gpu_hours_cap: '100', eur_cap: '250.25' }))).toEqual({
      ok: true,
      policy: {
        min_replicas: 0,
        max_replicas: 16,
        target_outstanding: 4.5,
        target_ttft_p95_ms: null,
        idle_window_s: 900,
        scale_down_cooldown_s: 300,
        gpu_hours_cap: '100',
        eur_cap: '250.25',
      },
    });
    expect(parsePolicy(form({ target_outstanding: '1000', target_ttft_p95_ms: '600000', idle_window_s: '604800', scale_down_cooldown_s: '0' })).ok).toBe(true);
  });

  it('refuses a minimum above the maximum, and replicas out of 0..16', () => {
    expect(refusal({ min_replicas: '3', max_replicas: '2' })).toEqual({ min_replicas: 'at most the maximum (2)' });
    expect(refusal({ max_replicas: '17' })).toEqual({ max_replicas: '1 to 16' });
    expect(refusal({ min_replicas: '0', max_replicas: '0' })).toEqual({ max_replicas: '1 to 16' });
    expect(refusal({ min_replicas: '-1' })?.min_replicas).toBe('0 to 16');
    expect(refusal({ min_replicas: '1.5' })?.min_replicas).toBe('0 to 16');
    expect(refusal({ min_replicas: '' })?.min_replicas).toBe('0 to 16');
  });

  it('refuses targets, windows and caps out of their bounds, each on its field', () => {
    expect(Object.keys(refusal({ target_outstanding: '0' }) ?? {})).toEqual(['target_outstanding']);
    expect(Object.keys(refusal({ target_outstanding: '1000.5' }) ?? {})).toEqual(['target_outstanding']);
    expect(Object.keys(refusal({ target_outstanding: 'four' }) ?? {})).toEqual(['target_outstanding']);
    expect(Object.keys(refusal({ target_ttft_p95_ms: '0' }) ?? {})).toEqual(['target_ttft_p95_ms']);
    expect(Object.keys(refusal({ target_ttft_p95_ms: '600001' }) ?? {})).toEqual(['target_ttft_p95_ms']);
    expect(Object.keys(refusal({ idle_window_s: '0' }) ?? {})).toEqual(['idle_window_s']);
    expect(Object.keys(refusal({ idle_window_s: '604801' }) ?? {})).toEqual(['idle_window_s']);
    expect(Object.keys(refusal({ scale_down_cooldown_s: '86401' }) ?? {})).toEqual(['scale_down_cooldown_s']);
    expect(Object.keys(refusal({ gpu_hours_cap: '-1' }) ?? {})).toEqual(['gpu_hours_cap']);
    expect(Object.keys(refusal({ eur_cap: '1.23456' }) ?? {})).toEqual(['eur_cap']);
    expect(Object.keys(refusal({ min_replicas: '5', max_replicas: '4', eur_cap: 'x' }) ?? {}).sort()).toEqual(['eur_cap', 'min_replicas']);
  });

  it('calls cold an active service at zero replicas whose minimum is 0, nothing else', () => {
    expect(isCold({ state: 'active', min_replicas: 0, active_replicas: 0 })).toBe(true);
    expect(isCold({ state: 'active', min_replicas: 0, active_replicas: 1 })).toBe(false);
    expect(isCold({ state: 'paused', min_replicas: 0, active_replicas: 0 })).toBe(false);
    expect(isCold({ state: 'active', min_replicas: 1, active_replicas: 0 })).toBe(false);
  });
});

describe('replica series from the timeline', () => {
  const at = (s: number) => new Date(Date.UTC(2026, 11, 6, 10, 0, s)).toISOString();
  const ev = (id: number, kind: ServiceEvent['kind'], s: number, from: number | null, to: number | null): ServiceEvent => ({
    id,
    kind,
    at: at(s),
    from_replicas: from,
    to_replicas: to,
    reason: kind,
  });
  // Newest first, as the API answers.
  const events = [
    ev(6, 'scaled', 40, 3, 2),
    ev(5, 'replica_created', 30, 2, 3),
    ev(4, 'placement_failed', 25, null, null),
    ev(3, 'scaled', 20, 1, 3),
    ev(2, 'replica_created', 5, 0, 1),
    ev(1, 'created', 0, 0, 1),
  ];
  const t = (s: number) => Date.parse(at(s));

  it('draws the desired count as steps from created and scaled, held up to now', () => {
    expect(stepSeries(events, DESIRED_KINDS, t(60))).toEqual([
      { t: t(0), v: 0 },
      { t: t(0), v: 1 },
      { t: t(20), v: 1 },
      { t: t(20), v: 3 },
      { t: t(40), v: 3 },
      { t: t(40), v: 2 },
      { t: t(60), v: 2 },
    ]);
  });

  it('draws the counted replicas from the convergence entries only', () => {
    expect(stepSeries(events, REPLICA_KINDS, t(30)).map((p) => p.v)).toEqual([0, 1, 1, 3]);
    expect(stepSeries([], DESIRED_KINDS, t(30))).toEqual([]);
  });
});

describe('load from the replicas', () => {
  it('sums the requests per minute over the replicas, in time order', () => {
    const a = { requests: [{ minute: '2026-12-06T10:01:00Z', requests: 3 }, { minute: '2026-12-06T10:00:00Z', requests: 1 }] };
    const b = { requests: [{ minute: '2026-12-06T10:01:00Z', requests: 4 }, { minute: '2026-12-06T10:02:00Z', requests: 2 }] };
    expect(requestsPerMinute([a, b])).toEqual([
      { t: Date.parse('2026-12-06T10:00:00Z'), v: 1 },
      { t: Date.parse('2026-12-06T10:01:00Z'), v: 7 },
      { t: Date.parse('2026-12-06T10:02:00Z'), v: 2 },
    ]);
    expect(requestsPerMinute([])).toEqual([]);
  });
});
