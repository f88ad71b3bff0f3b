// The one way the dashboard writes numbers, money, tokens and time. Money
// is `Intl` currency, always "1,234.56 EUR" (code after the amount): two
// decimals from 1 up, significant digits below (0.0125 EUR/min never reads
// "0 EUR"). The API's decimal strings go to `Intl` as strings, which keeps
// their digits (no float rounding on large totals); `formatExactEur` shows
// every digit for amounts that must match a statement to the last one.
const LOCALE = 'en-US';
const DECIMAL = /^-?\d+(\.\d+)?$/;

type Amount = string | number | null | undefined;

/** An amount (the API's decimal string or a number) in `currency`, rounded for reading. */
export function formatMoney(amount: Amount, currency = 'EUR', per?: string): string {
  if (amount === null || amount === undefined || amount === '') return '—';
  const value = typeof amount === 'number' ? amount : amount.trim();
  if (typeof value === 'string' && !DECIMAL.test(value)) return value;
  const magnitude = Math.abs(Number(value));
  if (!Number.isFinite(magnitude)) return String(amount);
  const options: Intl.NumberFormatOptions =
    magnitude >= 1 || magnitude === 0
      ? { minimumFractionDigits: 2, maximumFractionDigits: 2 }
      : { minimumSignificantDigits: 2, maximumSignificantDigits: 3 };
  return withCode(value, currency, options) + (per ? `/${per}` : '');
}

/** An amount in EUR: see `formatMoney`. */
export function formatEur(amount: Amount, per?: string): string {
  return formatMoney(amount, 'EUR', per);
}

/**
 * A decimal string in EUR with every digit it has (trailing zeros beyond
 * the cents dropped): for amounts and prices that must be read exactly.
 */
export function formatExactEur(amount: string | null | undefined): string {
  if (amount === null || amount === undefined || amount === '') return '—';
  const value = amount.trim();
  if (!DECIMAL.test(value)) return value;
  const fraction = (value.split('.')[1] ?? '').replace(/0+$/, '');
  const digits = Math.min(20, Math.max(2, fraction.length));
  return withCode(value, 'EUR', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function withCode(value: string | number, currency: string, options: Intl.NumberFormatOptions): string {
  const parts = new Intl.NumberFormat(LOCALE, { style: 'currency', currency, currencyDisplay: 'code', ...options }).formatToParts(
    value as Parameters<Intl.NumberFormat['format']>[0],
  );
  const amount = parts
    .filter((p) => p.type !== 'currency' && p.type !== 'literal')
    .map((p) => p.value)
    .join('');
  return `${amount} ${currency}`;
}

const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(LOCALE, { notation: 'compact', maximumFractionDigits: 1 });

/** A count, grouped: 1,234,567. */
export function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '—' : integer.format(n);
}

/** Tokens: "1,234,567 tokens", or "1.2M tokens" when `short`. */
export function formatTokens(n: number | null | undefined, short = false): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return `${short ? compact.format(n) : integer.format(n)} ${n === 1 ? 'token' : 'tokens'}`;
}

/**
 * A chart value: money by `formatMoney`'s rule, other units with up to
 * three significant digits below 1 and a compact notation from 10,000 up.
 */
export function formatValue(v: number, unit = ''): string {
  if (unit === 'EUR') return formatEur(v);
  const a = Math.abs(v);
  const text =
    a === 0
      ? '0'
      : a >= 10_000
        ? compact.format(v)
        : a >= 1
          ? new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 1 }).format(v)
          : new Intl.NumberFormat(LOCALE, { maximumSignificantDigits: 3 }).format(v);
  return unit ? `${text} ${unit}` : text;
}

/** A duration in milliseconds: "850 ms", "1.2 s", "3 min 05 s". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' });

/** A moment, absolute, with its time zone: "Dec 6, 2026, 11:38:14 PM UTC". */
export function formatDate(value: string | null | undefined): string {
  if (!value) return '—';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : absolute.format(d);
}

const relative = new Intl.RelativeTimeFormat(LOCALE, { numeric: 'auto' });
const STEPS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['second', 60],
  ['minute', 60],
  ['hour', 24],
  ['day', 30],
  ['month', 12],
  ['year', Infinity],
];

/** A moment relative to `now`: "5 minutes ago", "in 2 days". */
export function formatRelative(value: string | null | undefined, now = Date.now()): string {
  if (!value) return '—';
  const t = new Date(value).getTime();
  if (Number.isNaN(t)) return value;
  let amount = (t - now) / 1000;
  for (const [unit, size] of STEPS) {
    if (Math.abs(amount) < size) return relative.format(Math.round(amount), unit);
    amount /= size;
  }
  return relative.format(Math.round(amount), 'year');
}
