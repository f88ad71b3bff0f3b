import { describe, expect, it } from 'vitest';
import { parsePrice, perMillion, perMillionHint, priceError, priceText, priceTextPerMillion } from './prices';

describe('offering prices', () => {
  it("shows the API's strings untouched, or free without a price", () => {
    expect(priceText('0.002000', '0.006000')).toBe('0.002000 in · 0.006000 out');
    expect(priceText(null, null)).toBe('free');
    expect(priceText('0.002000', '0.006000', '0.000500')).toBe('0.002000 in (0.000500 cached) · 0.006000 out');
    expect(priceText('0.002000', '0.006000', '0.002000')).toBe('0.002000 in · 0.006000 out');
    expect(priceText('0.002', undefined)).toBe('free');
  });

  it('shows the same pair per 1M tokens', () => {
    expect(priceTextPerMillion('0.002000', '0.006000')).toBe('2 in · 6 out');
    expect(priceTextPerMillion('0.002000', '0.006000', '0.000500')).toBe('2 in (0.5 cached) · 6 out');
    expect(priceTextPerMillion('0.002000', '0.006000', '0.002000')).toBe('2 in · 6 out');
    expect(priceTextPerMillion(null, '1')).toBe('free');
  });

  it('refuses a pair unless both prices are decimals the API accepts', () => {
    expect(priceError('0.002', '0.006')).toBeNull();
    expect(priceError('0.002', '')).not.toBeNull();
    expect(priceError('0,002', '0.006')).toBeNull();
    expect(priceError('0.0000001', '0.006')).not.toBeNull();
    expect(priceError('0.002', '0.006', '')).toBeNull();
    expect(priceError('0.002', '0.006', '0.0005')).toBeNull();
    expect(priceError('0.002', '0.006', '0,0005')).toBeNull();
    expect(priceError('0.002', '0.006', '0.002000')).toBeNull();
    expect(priceError('0.002', '0.006', '0.0021')).toBe('The cached rate is at most the input rate.');
    expect(priceError('0,002', '0.006', '0,0021')).toBe('The cached rate is at most the input rate.');
    expect(priceError('10', '0.006', '9.999999')).toBeNull();
    expect(priceError('0.002', '0.006', '-1')).not.toBeNull();
  });
});

describe('perMillion', () => {
  it('moves the point three places, exactly', () => {
    expect(perMillion('0.002000')).toBe('2');
    expect(perMillion('0.000500')).toBe('0.5');
    expect(perMillion('0.000001')).toBe('0.001');
    expect(perMillion('12')).toBe('12000');
    expect(perMillion('1.23456')).toBe('1234.56');
    expect(perMillion('0')).toBe('0');
    expect(perMillion('0.000000')).toBe('0');
  });
});

describe('parsePrice', () => {
  it('reads a decimal comma as a point', () => {
    expect(parsePrice('0,002')).toBe('0.002');
    expect(parsePrice('0,002')).toBe(parsePrice('0.002'));
    expect(parsePrice('12,5')).toBe('12.5');
    expect(parsePrice(',5')).toBe('0.5');
  });

  it('takes points as they are', () => {
    expect(parsePrice('0.002')).toBe('0.002');
    expect(parsePrice('3')).toBe('3');
    expect(parsePrice('0.000001')).toBe('0.000001');
  });

  it('ignores spaces, including no-break and narrow ones', () => {
    expect(parsePrice(' 0.002 ')).toBe('0.002');
    expect(parsePrice('1 000,5')).toBe('1000.5');
    expect(parsePrice('1\u00a0000,5')).toBe('1000.5');
    expect(parsePrice('1\u202f000.5')).toBe('1000.5');
  });

  it('refuses negative prices', () => {
    expect(parsePrice('-0.002')).toBeNull();
    expect(parsePrice('-0,002')).toBeNull();
    expect(parsePrice('- 1')).toBeNull();
  });

  it('refuses empty text', () => {
    expect(parsePrice('')).toBeNull();
    expect(parsePrice('   ')).toBeNull();
  });

  it('refuses what is not a price the API takes', () => {
    for (const bad of ['1,000.5', '1.000,5', '0,0,1', '1.', 'abc', '1e3', '0.0000001', '1234567', '+1']) expect(parsePrice(bad), bad).toBeNull();
  });

  it('gives the per 1M hint of a typed price', () => {
    expect(perMillionHint('0,002')).toBe('2 EUR per 1M tokens');
    expect(perMillionHint('')).toBeUndefined();
    expect(perMillionHint('-1')).toBeUndefined();
  });
});
