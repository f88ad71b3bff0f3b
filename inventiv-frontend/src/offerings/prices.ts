// Offering prices as shown and as typed: the API's decimal strings shown
// untouched, and a pair checked before it is sent.
import { isPrice } from '../finops/money';

/** A price pair (EUR per 1k tokens) as shown: "0.002000 in · 0.006000 out", the API's strings untouched; "free" without one.
 * A cached prompt tokens' rate other than the input rate shows after it: "0.002000 in (0.000500 cached) · …". */
export function priceText(input: string | null | undefined, output: string | null | undefined, cached?: string | null): string {
  if (!input || !output) return 'free';
  const cachedText = cached && cached !== input ? ` (${cached} cached)` : '';
  return `${input} in${cachedText} · ${output} out`;
}

/** A valid price in millionths of a euro, exactly (at most 6 digits each side). */
function micros(price: string): number {
  const [int, frac = ''] = price.split('.');
  return Number(int) * 1_000_000 + Number(frac.padEnd(6, '0'));
}

/** Both prices valid (and the optional cached input rate, at most the input rate), or the reason not. */
export function priceError(input: string, output: string, cached = ''): string | null {
  if (!isPrice(input) || !isPrice(output)) return 'Prices are decimals like 0.002 (EUR per 1k tokens, at most 6 decimals).';
  if (cached.trim() === '') return null;
  if (!isPrice(cached)) return 'The cached rate is a decimal like 0.0005 (EUR per 1k tokens, at most 6 decimals).';
  if (micros(cached) > micros(input)) return 'The cached rate is at most the input rate.';
  return null;
}
