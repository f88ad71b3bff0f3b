// The request log's pure pieces: the filters as GET /usage/requests takes
// them, and how a request's key, status and error rate read.
import type { paths } from '../api/schema';
import type { RequestEntry } from '../api/types';
import type { Tone } from '../components/statusTones';

export type StatusFilter = NonNullable<NonNullable<paths['/usage/requests']['get']['parameters']['query']>['status']>;

/** The filter bar's values, as typed (empty: no filter). */
export interface Filters {
  model: string;
  apiKeyId: string;
  status: StatusFilter | '';
  /** `<input type="datetime-local">` values: local time, no zone. */
  from: string;
  to: string;
  requestId: string;
}

export const NO_FILTERS: Filters = { model: '', apiKeyId: '', status: '', from: '', to: '', requestId: '' };

export const STATUS_LABELS: Record<StatusFilter, string> = {
  ok: 'Succeeded',
  error: 'Failed (any)',
  '4xx': 'Refused (4xx)',
  '5xx': 'Server error (5xx)',
};

/** A local date and time of the filter bar as RFC 3339 (UTC); undefined when empty or invalid. */
export function localToIso(value: string): string | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** The query of GET /usage/requests: only the filters set, trimmed, and the page's cursor. */
export function requestsQuery(f: Filters, limit: number, before?: string) {
  const query: Record<string, string | number> = { limit };
  const text = (v: string) => v.trim() || undefined;
  const set = (k: string, v: string | undefined) => {
    if (v !== undefined) query[k] = v;
  };
  set('model', text(f.model));
  set('api_key_id', text(f.apiKeyId));
  set('status', f.status || undefined);
  set('from', localToIso(f.from));
  set('to', localToIso(f.to));
  set('request_id', text(f.requestId));
  set('before', before);
  return query;
}

/** The key a request was made with: its name and prefix, or why they are not shown. */
export function keyLabel(r: Pick<RequestEntry, 'api_key_id' | 'api_key_name' | 'api_key_prefix'>): string {
  if (!r.api_key_id) return 'Session';
  if (!r.api_key_name) return "Another member's key";
  return r.api_key_prefix ? `${r.api_key_name} (${r.api_key_prefix}…)` : r.api_key_name;
}

/** A status's tone: success, refusal (4xx) or failure (5xx and anything else). */
export function statusTone(status: number): Tone {
  if (status < 400) return 'ok';
  if (status < 500) return 'warn';
  return 'bad';
}

/** A share from 0 to 1 as a percentage with one decimal: "2.5 %". */
export function formatRate(rate: number): string {
  return Number.isFinite(rate) ? `${Math.round(rate * 1000) / 10} %` : '—';
}
