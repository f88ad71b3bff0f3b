// A service's policy as a form: the API's bounds (inventiv-common/src/service.rs,
// checked by the API's Policy::validated; a unit test reads the constants
// from the Rust source), the text fields parsed into a PATCH or POST body,
// the "cold" verdict and the replica series of the timeline.
import type { Service, ServiceEvent, ServiceEventKind } from '../api/types';
import type { Point } from '../components/chart';

export const BOUNDS = {
  maxReplicas: 16,
  maxTargetOutstanding: 1000,
  maxTargetTtftP95Ms: 600_000,
  maxIdleWindowS: 604_800,
  maxScaleDownCooldownS: 86_400,
  defaultIdleWindowS: 900,
  defaultScaleDownCooldownS: 300,
} as const;

/** The policy's fields as typed (strings; an empty optional one means "none"). */
export interface PolicyForm {
  min_replicas: string;
  max_replicas: string;
  target_outstanding: string;
  target_ttft_p95_ms: string;
  idle_window_s: string;
  scale_down_cooldown_s: string;
  gpu_hours_cap: string;
  eur_cap: string;
}

export interface Policy {
  min_replicas: number;
  max_replicas: number;
  target_outstanding: number | null;
  target_ttft_p95_ms: number | null;
  idle_window_s: number;
  scale_down_cooldown_s: number;
  gpu_hours_cap: string | null;
  eur_cap: string | null;
}

export type PolicyErrors = Partial<Record<keyof PolicyForm, string>>;

export type Parsed = { ok: true; policy: Policy } | { ok: false; errors: PolicyErrors };

export const EMPTY_POLICY: PolicyForm = {
  min_replicas: '1',
  max_replicas: '1',
  target_outstanding: '',
  target_ttft_p95_ms: '',
  idle_window_s: String(BOUNDS.defaultIdleWindowS),
  scale_down_cooldown_s: String(BOUNDS.defaultScaleDownCooldownS),
  gpu_hours_cap: '',
  eur_cap: '',
};

/** The form of a service's current policy. */
export function policyForm(s: Service): PolicyForm {
  const text = (v: number | string | null | undefined) => (v === null || v === undefined ? '' : String(v));
  return {
    min_replicas: text(s.min_replicas),
    max_replicas: text(s.max_replicas),
    target_outstanding: text(s.target_outstanding),
    target_ttft_p95_ms: text(s.target_ttft_p95_ms),
    idle_window_s: text(s.idle_window_s),
    scale_down_cooldown_s: text(s.scale_down_cooldown_s),
    gpu_hours_cap: text(s.gpu_hours_cap),
    eur_cap: text(s.eur_cap),
  };
}

function integer(text: string): number | null {
  return /^\d+$/.test(text.trim()) ? Number(text.trim()) : null;
}

/** A non-negative decimal as the API takes it: at most 10 digits and 4 decimals. */
function amount(text: string): boolean {
  return /^\d{1,10}(\.\d{1,4})?$/.test(text);
}

/** Parses and checks the form with the API's bounds; every refusal names its field. */
export function parsePolicy(form: PolicyForm): Parsed {
  const errors: PolicyErrors = {};
  const min = integer(form.min_replicas);
  const max = integer(form.max_replicas);
  if (min === null || min > BOUNDS.maxReplicas) errors.min_replicas = `0 to ${BOUNDS.maxReplicas}`;
  if (max === null || max < 1 || max > BOUNDS.maxReplicas) errors.max_replicas = `1 to ${BOUNDS.maxReplicas}`;
  if (min !== null && max !== null && !errors.min_replicas && !errors.max_replicas && min > max) {
    errors.min_replicas = `at most the maximum (${max})`;
  }

  let target: number | null = null;
  const targetText = form.target_outstanding.trim();
  if (targetText !== '') {
    target = /^\d+(\.\d+)?$|^\.\d+$/.test(targetText) ? Number(targetText) : NaN;
    if (!(target > 0 && target <= BOUNDS.maxTargetOutstanding)) errors.target_outstanding = `above 0, at most ${BOUNDS.maxTargetOutstanding}`;
  }

  let ttft: number | null = null;
  if (form.target_ttft_p95_ms.trim() !== '') {
    ttft = integer(form.target_ttft_p95_ms);
    if (ttft === null || ttft < 1 || ttft > BOUNDS.maxTargetTtftP95Ms) errors.target_ttft_p95_ms = `1 to ${BOUNDS.maxTargetTtftP95Ms} ms`;
  }

  const idle = integer(form.idle_window_s);
  if (idle === null || idle < 1 || idle > BOUNDS.maxIdleWindowS) errors.idle_window_s = `1 to ${BOUNDS.maxIdleWindowS} s`;
  const cooldown = integer(form.scale_down_cooldown_s);
  if (cooldown === null || cooldown > BOUNDS.maxScaleDownCooldownS) errors.scale_down_cooldown_s = `0 to ${BOUNDS.maxScaleDownCooldownS} s`;

  const cap = (field: 'gpu_hours_cap' | 'eur_cap'): string | null => {
    const text = form[field].trim();
    if (text === '') return null;
    if (!amount(text)) errors[field] = 'a non-negative decimal like 12.5 (at most 4 decimals)';
    return text;
  };
  const gpuHours = cap('gpu_hours_cap');
  const eur = cap('eur_cap');

  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return {
    ok: true,
    policy: {
      min_replicas: min ?? 0,
      max_replicas: max ?? 1,
      target_outstanding: target,
      target_ttft_p95_ms: ttft,
      idle_window_s: idle ?? BOUNDS.defaultIdleWindowS,
      scale_down_cooldown_s: cooldown ?? BOUNDS.defaultScaleDownCooldownS,
      gpu_hours_cap: gpuHours,
      eur_cap: eur,
    },
  };
}

/** Active with nothing running and allowed to stay so: the next request waits for a replica to start. */
export function isCold(s: Pick<Service, 'state' | 'min_replicas' | 'active_replicas'>): boolean {
  return s.state === 'active' && s.min_replicas === 0 && s.active_replicas === 0;
}

/** The timeline entries that move the desired count (their from/to are desired replicas). */
export const DESIRED_KINDS: ReadonlyArray<ServiceEventKind> = ['created', 'updated', 'scaled', 'paused', 'resumed', 'deleting', 'deleted'];
/** The entries of the convergence (their from/to are the replicas counted before and after). */
export const REPLICA_KINDS: ReadonlyArray<ServiceEventKind> = ['replica_created', 'replica_terminated'];

/**
 * A count over time from the timeline (newest first, as the API answers):
 * the entries of `kinds` with a `to_replicas`, oldest first, starting from
 * the oldest one's `from_replicas`, as steps, held up to `now`.
 */
export function stepSeries(events: ServiceEvent[], kinds: ReadonlyArray<ServiceEventKind>, now: number): Point[] {
  const moves = events
    .filter((e) => kinds.includes(e.kind) && e.to_replicas !== null && e.to_replicas !== undefined)
    .map((e) => ({ t: new Date(e.at).getTime(), from: e.from_replicas ?? null, to: e.to_replicas ?? 0, id: e.id }))
    .sort((a, b) => a.t - b.t || a.id - b.id);
  const points: Point[] = [];
  for (const m of moves) {
    const last = points.at(-1);
    if (last) points.push({ t: m.t, v: last.v });
    else if (m.from !== null) points.push({ t: m.t, v: m.from });
    points.push({ t: m.t, v: m.to });
  }
  const last = points.at(-1);
  if (last && now > last.t) points.push({ t: now, v: last.v });
  return points;
}

/** Requests per minute summed over replicas (each one's `GET /instances/{id}/metrics` series), in time order. */
export function requestsPerMinute(replicas: { requests: { minute: string; requests: number }[] }[]): Point[] {
  const sums = new Map<number, number>();
  for (const r of replicas) {
    for (const p of r.requests) {
      const t = new Date(p.minute).getTime();
      sums.set(t, (sums.get(t) ?? 0) + p.requests);
    }
  }
  return [...sums.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => ({ t, v }));
}
