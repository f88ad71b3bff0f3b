import { describe, expect, it } from 'vitest';
import { hoursLeftInMonth, monthEndForecast } from './forecast';

describe('hoursLeftInMonth', () => {
  it('counts to the first instant of the next UTC month', () => {
    expect(hoursLeftInMonth(new Date('2026-12-31T23:00:00Z'))).toBe(1);
    expect(hoursLeftInMonth(new Date('2026-12-01T00:00:00Z'))).toBe(31 * 24);
    expect(hoursLeftInMonth(new Date('2028-02-28T00:00:00Z'))).toBe(2 * 24);
    expect(hoursLeftInMonth(new Date('2026-02-28T12:00:00Z'))).toBe(12);
  });

  it('takes UTC, not the local time zone, as the month boundary', () => {
    // 00:30 on March 1st in Paris is still February in UTC.
    expect(hoursLeftInMonth(new Date('2026-03-01T00:30:00+01:00'))).toBe(0.5);
  });
});

describe('monthEndForecast', () => {
  it('adds the rate over the hours left to what was spent', () => {
    expect(monthEndForecast('100', '2.5', new Date('2026-12-31T20:00:00Z'))).toBe(110);
    expect(monthEndForecast('0.0000', '1.0000', new Date('2026-04-01T00:00:00Z'))).toBe(720);
  });

  it('is what was spent when nothing runs', () => {
    expect(monthEndForecast('12.3456', '0.0000', new Date('2026-12-07T11:00:00Z'))).toBe(12.35);
  });

  it('adds nothing at the very end of the month', () => {
    expect(monthEndForecast('50', '3', new Date('2027-01-01T00:00:00Z'))).toBe(50 + 3 * 31 * 24);
    expect(monthEndForecast('50', '3', new Date('2026-12-31T23:59:59.999Z'))).toBe(50);
  });

  it('gives up on amounts that are not numbers', () => {
    expect(monthEndForecast('', '1', new Date())).toBeNull();
    expect(monthEndForecast('1', 'n/a', new Date())).toBeNull();
  });
});
