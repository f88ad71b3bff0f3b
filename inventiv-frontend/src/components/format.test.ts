import { formatCount, formatDuration, formatEur, formatExactEur, formatMoney, formatRelative, formatTokens, formatValue } from './format';

describe('money', () => {
  it.each([
    ['0.0125', 'min', '0.0125 EUR/min'],
    ['6570.0000', undefined, '6,570.00 EUR'],
    ['6570', undefined, '6,570.00 EUR'],
    ['0.000206', undefined, '0.000206 EUR'],
    ['0.0000', undefined, '0.00 EUR'],
    ['0.5', undefined, '0.50 EUR'],
    ['1.005', undefined, '1.01 EUR'],
    ['-12.3456', undefined, '-12.35 EUR'],
    ['18396123456789.1234', undefined, '18,396,123,456,789.12 EUR'],
  ])('%s EUR%s reads %s', (amount, per, expected) => {
    expect(formatEur(amount, per)).toBe(expected);
  });

  it('takes numbers (chart values) by the same rule', () => {
    expect(formatEur(0.0125, 'min')).toBe('0.0125 EUR/min');
    expect(formatEur(6570)).toBe('6,570.00 EUR');
    expect(formatValue(0.000206, 'EUR')).toBe('0.000206 EUR');
  });

  it('has one notation: the code after the amount, never a symbol', () => {
    expect(formatMoney('3.5', 'USD')).toBe('3.50 USD');
    expect(formatEur('42')).not.toContain('€');
  });

  it('shows what is not a decimal unchanged, and a dash for nothing', () => {
    expect(formatEur('NaN-ish')).toBe('NaN-ish');
    expect(formatEur(null)).toBe('—');
    expect(formatEur(undefined)).toBe('—');
  });

  it('keeps every digit of an exact amount', () => {
    expect(formatExactEur('0.000123456000')).toBe('0.000123456 EUR');
    expect(formatExactEur('6570.0000')).toBe('6,570.00 EUR');
    expect(formatExactEur('1234567.002')).toBe('1,234,567.002 EUR');
  });
});

describe('tokens and counts', () => {
  it('groups counts and names tokens', () => {
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatTokens(1234567)).toBe('1,234,567 tokens');
    expect(formatTokens(1)).toBe('1 token');
    expect(formatTokens(0)).toBe('0 tokens');
    expect(formatTokens(1234567, true)).toBe('1.2M tokens');
    expect(formatTokens(null)).toBe('—');
  });

  it('writes chart values readably', () => {
    expect(formatValue(0)).toBe('0');
    expect(formatValue(0.0125, 'req/s')).toBe('0.0125 req/s');
    expect(formatValue(12.345, '%')).toBe('12.3 %');
    expect(formatValue(25_400, 'tokens')).toBe('25.4K tokens');
  });
});

describe('time', () => {
  it('writes durations', () => {
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(1234)).toBe('1.2 s');
    expect(formatDuration(185_000)).toBe('3 min 05 s');
  });

  it('writes relative times', () => {
    const now = Date.parse('2026-12-06T12:00:00Z');
    expect(formatRelative('2026-12-06T11:55:00Z', now)).toBe('5 minutes ago');
    expect(formatRelative('2026-12-08T12:00:00Z', now)).toBe('in 2 days');
    expect(formatRelative(null, now)).toBe('—');
  });
});
