// Offering prices as shown and as typed: the API's decimal strings shown
// untouched, and a pair checked before it is sent.
import { isPrice } from '../finops/money';

/** A price pair (EUR per 1k tokens) as shown: "0.002000 in · 0.006000 out", the API's strings untouched; "free" without one. */
export function priceText(input: string | null | undefined, output: string | null | undefined): string {
  if (!input || !output) return 'free';
  return `${input} in · ${output} out`;
}

/** Both prices valid, or the reason not. */
export function priceError(input: string, output: string): string | null {
  if (!isPrice(input) || !isPrice(output)) return 'Prices are decimals like 0.002 (EUR per 1k tokens, at most 6 decimals).';
  return null;
}
