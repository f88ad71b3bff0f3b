import { describe, expect, it } from 'vitest';
import { pivot, seriesQuery, utcMonth } from './money';

describe('seriesQuery', () => {
  it('spans a range that fits the bucket, ending now', () => {
    const now = new Date('2026-03-02T12:00:00Z');
    expect(seriesQuery('minute', 'model', now)).toEqual({
      bucket: 'minute',
      group_by: 'model',
      from: '2026-03-02T09:00:00.000Z',
      to: '2026-03-02T12:00:00.000Z',
    });
    expect(seriesQuery('day', 'none', now).from).toBe('2026-01-31T12:00:00.000Z');
  });
});

describe('pivot', () => {
  it('makes one time-ordered series per group, named by the label', () => {
    const rows = [
      { bucket: '2026-03-02T11:00:00Z', group: 'b', cost_eur: '2.5' },
      { bucket: '2026-03-02T10:00:00Z', group: 'a', cost_eur: '1' },
      { bucket: '2026-03-02T09:00:00Z', group: 'a', cost_eur: '0.5' },
    ];
    const series = pivot(rows, (r) => Number(r.cost_eur), (g) => g.toUpperCase());
    expect(series).toEqual([
      { name: 'B', points: [{ t: Date.parse('2026-03-02T11:00:00Z'), v: 2.5 }] },
      {
        name: 'A',
        points: [
          { t: Date.parse('2026-03-02T09:00:00Z'), v: 0.5 },
          { t: Date.parse('2026-03-02T10:00:00Z'), v: 1 },
        ],
      },
    ]);
  });
});

describe('utcMonth', () => {
  it('is the UTC month, not the local one', () => {
    expect(utcMonth(new Date('2026-03-31T23:30:00Z'))).toBe('2026-03');
    expect(utcMonth(new Date('2026-12-01T00:00:00Z'))).toBe('2026-12');
  });
});
