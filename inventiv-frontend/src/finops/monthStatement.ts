// Helpers of the billable monthly statement (GET /finops/statements/{month}).
import type { MonthLine } from '../api/types';

/** Whether the UTC month `month` (YYYY-MM) is over at `now`: only then can it be closed. */
export function monthHasEnded(month: string, now = new Date()): boolean {
  const m = /^(\d{4})-(\d{2})$/.exec(month);
  if (!m) return false;
  const next = Date.UTC(Number(m[1]), Number(m[2]), 1);
  return next <= now.getTime();
}

const KIND_LABEL: Record<string, string> = {
  gpu: 'GPU time',
  debit: 'Consumed (debit)',
  credit: 'Provided (credit)',
  adjustment: 'Adjustment',
};

/** How a line's kind reads. */
export function kindLabel(kind: string): string {
  return KIND_LABEL[kind] ?? kind;
}

/** What a line counts: GPU seconds, or requests and tokens (with the cached
 * prompt tokens among them, priced at the cached rate, when there are any). */
export function lineQuantity(line: Pick<MonthLine, 'gpu_seconds' | 'requests' | 'tokens' | 'cached_tokens'>): string {
  const parts: string[] = [];
  if (line.gpu_seconds !== null && line.gpu_seconds !== undefined) parts.push(`${line.gpu_seconds} GPU s`);
  if (line.requests !== null && line.requests !== undefined) parts.push(`${line.requests} requests`);
  if (line.tokens !== null && line.tokens !== undefined) {
    const cached = line.cached_tokens ? ` (${line.cached_tokens} cached)` : '';
    parts.push(`${line.tokens} tokens${cached}`);
  }
  return parts.join(' · ');
}
