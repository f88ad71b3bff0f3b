// The sign of a margin (revenue − GPU cost) as the API writes it, a decimal
// string, read without floats so "-0.0000" is even and "-0.0001" a loss.

export type MarginSign = 'negative' | 'zero' | 'positive' | 'unknown';

const DECIMAL = /^([+-]?)(\d+)(?:\.(\d+))?$/;

/** Whether `value` is a loss, even, a gain, or not a decimal at all. */
export function classifyMargin(value: string | null | undefined): MarginSign {
  const m = DECIMAL.exec((value ?? '').trim());
  if (!m) return 'unknown';
  const [, sign, int = '', frac = ''] = m;
  if (/^0+$/.test(int) && /^0*$/.test(frac)) return 'zero';
  return sign === '-' ? 'negative' : 'positive';
}

/** Why a negative margin is one, for its title. */
export const NEGATIVE_MARGIN_TITLE =
  'Negative margin: the GPU time serving this offering cost more than the consumers were charged through shares over the period.';
