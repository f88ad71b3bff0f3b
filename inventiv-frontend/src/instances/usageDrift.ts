// How the reconciliation of the proxy's metering with the engines' token
// counters reads on the instance page: counts, drift in percent, a verdict.
import type { DriftStatus, UsageReconciliation } from '../api/types';
import type { Tone } from '../components/statusTones';

export interface DriftView {
  label: string;
  tone: Tone;
  drift: string;
  engine: string;
  proxy: string;
  window: string;
}

const count = new Intl.NumberFormat('en-US');

/** A ratio as a percentage with two decimals; a drift too small to show reads as under 0.01 %. */
export function formatDriftPercent(ratio: number): string {
  if (!Number.isFinite(ratio) || ratio < 0) return '—';
  if (ratio > 0 && ratio < 0.0001) return '< 0.01 %';
  return `${(ratio * 100).toFixed(2)} %`;
}

/** Prompt / generated tokens, grouped by thousands. */
export function formatTokens(prompt: number, generated: number): string {
  return `${count.format(prompt)} prompt / ${count.format(generated)} generated`;
}

function minutes(from: string, to: string): string {
  const m = Math.round((Date.parse(to) - Date.parse(from)) / 60_000);
  return Number.isFinite(m) ? `${m} min` : '—';
}

/** Each verdict in words and its tone: a verdict added to the API fails the type check until it is here. */
const verdicts: Record<DriftStatus, { label: string; tone: Tone }> = {
  ok: { label: 'in agreement', tone: 'ok' },
  alert: { label: 'drift alert', tone: 'bad' },
  insufficient_data: { label: 'not enough traffic', tone: 'off' },
};

/** The page's view of the latest reconciliation; null when there is none yet. */
export function driftView(r: UsageReconciliation | null | undefined): DriftView | null {
  if (!r) return null;
  return {
    ...verdicts[r.status],
    drift: r.status === 'insufficient_data' ? '—' : formatDriftPercent(r.drift_ratio),
    engine: formatTokens(r.engine_prompt, r.engine_generation),
    proxy: formatTokens(r.proxy_prompt, r.proxy_completion),
    window: `${minutes(r.window_start, r.window_end)} ending ${new Date(r.window_end).toISOString().slice(11, 16)} UTC`,
  };
}
