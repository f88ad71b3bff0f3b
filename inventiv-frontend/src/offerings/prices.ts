// Offering prices as shown and as typed: the API's decimal strings shown
// untouched (per 1k tokens, and the same shifted to per 1M tokens), and
// what a person types (a decimal comma, spaces) read into the API's form.

/** A price pair (EUR per 1k tokens) as shown: "0.002000 in · 0.006000 out", the API's strings untouched; "free" without one.
 * A cached prompt tokens' rate other than the input rate shows after it: "0.002000 in (0.000500 cached) · …". */
export function priceText(input: string | null | undefined, output: string | null | undefined, cached?: string | null): string {
  if (!input || !output) return 'free';
  const cachedText = cached && cached !== input ? ` (${cached} cached)` : '';
  return `${input} in${cachedText} · ${output} out`;
}

/** The same pair per 1M tokens: "2 in · 6 out"; "free" without one. */
export function priceTextPerMillion(input: string | null | undefined, output: string | null | undefined, cached?: string | null): string {
  if (!input || !output) return 'free';
  return priceText(perMillion(input), perMillion(output), cached && cached !== input ? perMillion(cached) : null);
}

/** A price per 1k tokens (a decimal string) per 1M tokens, exactly: the point moved three places ("0.002000" → "2"). */
export function perMillion(per1k: string): string {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(per1k.trim());
  if (!m) return per1k;
  const [, int = '', frac = ''] = m;
  const padded = frac.padEnd(3, '0');
  const whole = (int + padded.slice(0, 3)).replace(/^0+(?=\d)/, '');
  const rest = padded.slice(3).replace(/0+$/, '');
  return rest ? `${whole}.${rest}` : whole;
}

/**
 * A price typed by a person as the API takes it (EUR, ≥ 0, at most 6 digits
 * and 6 decimals): a decimal comma reads as a point ("0,002" is 0.002) and
 * spaces are ignored ("1 000,5"). Null when empty, negative, or not such a
 * number (a comma and a point together are ambiguous, so refused).
 */
export function parsePrice(text: string): string | null {
  const compact = text.replace(/[\s\u00a0\u202f]/g, '');
  if (compact.includes(',') && compact.includes('.')) return null;
  const dotted = compact.replace(',', '.');
  const normalized = dotted.startsWith('.') ? `0${dotted}` : dotted;
  return /^\d{1,6}(\.\d{1,6})?$/.test(normalized) ? normalized : null;
}

/** A valid price in millionths of a euro, exactly (at most 6 digits each side). */
function micros(price: string): number {
  const [int, frac = ''] = price.split('.');
  return Number(int) * 1_000_000 + Number(frac.padEnd(6, '0'));
}

/** Both prices valid (and the optional cached input rate, at most the input rate), or the reason not. */
export function priceError(input: string, output: string, cached = ''): string | null {
  const i = parsePrice(input);
  const o = parsePrice(output);
  if (i === null || o === null) return 'Prices are decimals like 0.002 or 0,002 (EUR per 1k tokens, at most 6 decimals).';
  if (cached.trim() === '') return null;
  const c = parsePrice(cached);
  if (c === null) return 'The cached rate is a decimal like 0.0005 (EUR per 1k tokens, at most 6 decimals).';
  if (micros(c) > micros(i)) return 'The cached rate is at most the input rate.';
  return null;
}

/** The hint of a price field: the typed price per 1M tokens, once it is one. */
export function perMillionHint(text: string): string | undefined {
  const price = parsePrice(text);
  return price === null ? undefined : `${perMillion(price)} EUR per 1M tokens`;
}
