import { describe, expect, it } from 'vitest';
import { priceError, priceText } from './prices';

describe('offering prices', () => {
  it("shows the API's strings untouched, or free without a price", () => {
    expect(priceText('0.002000', '0.006000')).toBe('0.002000 in · 0.006000 out');
    expect(priceText(null, null)).toBe('free');
    expect(priceText('0.002000', '0.006000', '0.000500')).toBe('0.002000 in (0.000500 cached) · 0.006000 out');
    expect(priceText('0.002000', '0.006000', '0.002000')).toBe('0.002000 in · 0.006000 out');
    expect(priceText('0.002', undefined)).toBe('free');
  });

  it('refuses a pair unless both prices are decimals the API accepts', () => {
    expect(priceError('0.002', '0.006')).toBeNull();
    expect(priceError('0.002', '')).not.toBeNull();
    expect(priceError('0,002', '0.006')).not.toBeNull();
    expect(priceError('0.0000001', '0.006')).not.toBeNull();
    expect(priceError('0.002', '0.006', '')).toBeNull();
    expect(priceError('0.002', '0.006', '0.0005')).toBeNull();
    expect(priceError('0.002', '0.006', '0.002000')).toBeNull();
    expect(priceError('0.002', '0.006', '0.0021')).toBe('The cached rate is at most the input rate.');
    expect(priceError('10', '0.006', '9.999999')).toBeNull();
    expect(priceError('0.002', '0.006', '-1')).not.toBeNull();
  });
});
