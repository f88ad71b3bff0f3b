// What the budgets page shows for one limit of a budget: how much of it is
// used, reserved by requests in flight and forecast at the month's end
// (the API's linear forecast), which alert thresholds it passed, and
// whether the forecast runs past the limit.
import type { Budget } from '../api/types';

export type Metric = 'eur' | 'tokens' | 'gpu_hours';

export interface Meter {
  metric: Metric;
  label: string;
  used: number;
  reserved: number;
  forecast: number;
  limit: number;
  /** Share of the limit used, in percent (Infinity for a zero limit once anything is used). */
  percent: number;
  forecastPercent: number;
  /** Thresholds reached this month, ascending. */
  passed: number[];
  /** The figures as shown: EUR as the API's decimal strings (never through floats). */
  shown: { used: string; reserved: string; forecast: string; limit: string };
  /** `ok`, `warn` (a threshold passed or the forecast exceeds the limit) or `over` (limit reached). */
  tone: 'ok' | 'warn' | 'over';
}

/** Percent of `limit` that `value` represents; a zero limit is 0 % until anything is used. */
export function percentOf(value: number, limit: number): number {
  if (limit > 0) return (value / limit) * 100;
  return value > 0 ? Infinity : 0;
}

/** One meter; `thresholds` are the budget's alert percentages. */
export function meter(
  metric: Metric,
  used: number,
  reserved: number,
  forecast: number,
  limit: number,
  thresholds: number[],
  shown = { used: String(used), reserved: String(reserved), forecast: String(forecast), limit: String(limit) },
): Meter {
  const percent = percentOf(used, limit);
  const forecastPercent = percentOf(forecast, limit);
  const passed = [...thresholds].sort((a, b) => a - b).filter((t) => percent >= t);
  const tone = percent >= 100 ? 'over' : passed.length > 0 || forecastPercent > 100 ? 'warn' : 'ok';
  const label = metric === 'eur' ? 'EUR' : metric === 'tokens' ? 'Tokens' : 'GPU hours';
  return { metric, label, used, reserved, forecast, limit, percent, forecastPercent, passed, shown, tone };
}

/** The meters of every limit the budget sets, in a fixed order. */
export function meters(b: Budget): Meter[] {
  const c = b.consumption;
  const out: Meter[] = [];
  if (b.monthly_eur != null) {
    out.push(
      meter('eur', Number(c.eur), Number(c.reserved_eur), Number(c.forecast_eur), Number(b.monthly_eur), b.thresholds, {
        used: c.eur,
        reserved: c.reserved_eur,
        forecast: c.forecast_eur,
        limit: b.monthly_eur,
      }),
    );
  }
  if (b.monthly_tokens != null) {
    out.push(meter('tokens', c.tokens, c.reserved_tokens, c.forecast_tokens, b.monthly_tokens, b.thresholds));
  }
  if (b.monthly_gpu_hours != null) {
    const hours = (h: number) => h.toFixed(2);
    out.push(
      meter('gpu_hours', c.gpu_hours, 0, c.forecast_gpu_hours, Number(b.monthly_gpu_hours), b.thresholds, {
        used: hours(c.gpu_hours),
        reserved: '0',
        forecast: hours(c.forecast_gpu_hours),
        limit: b.monthly_gpu_hours,
      }),
    );
  }
  return out;
}

/** Thresholds typed as "50, 80, 100": whole percentages from 1 to 100, or null when invalid. */
export function parseThresholds(input: string): number[] | null {
  const parts = input.split(/[\s,]+/).filter(Boolean);
  const values = parts.map((p) => Number(p));
  if (values.length > 10 || values.some((v) => !Number.isInteger(v) || v < 1 || v > 100)) return null;
  return [...new Set(values)].sort((a, b) => a - b);
}

/** A limit typed in a form: null when empty, the value otherwise, undefined when invalid (negative, not a number). */
export function parseAmount(input: string, decimals: number): string | null | undefined {
  const t = input.trim();
  if (t === '') return null;
  const re = decimals > 0 ? new RegExp(`^\\d{1,10}(\\.\\d{1,${decimals}})?$`) : /^\d{1,16}$/;
  return re.test(t) ? t : undefined;
}
