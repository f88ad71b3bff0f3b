import { describe, expect, it } from 'vitest';
import { domainOf, gapThreshold, isolated, linePath, position, seriesBy } from './chart';

describe('domainOf', () => {
  it('spans the samples in time and from 0 to the largest value', () => {
    expect(domainOf([[{ t: 10, v: 3 }, { t: 30, v: 7 }], [{ t: 20, v: 5 }]])).toEqual({ t0: 10, t1: 30, v0: 0, v1: 7 });
  });
  it('uses the fixed maximum when given (percentages)', () => {
    expect(domainOf([[{ t: 0, v: 40 }, { t: 1, v: 60 }]], 100).v1).toBe(100);
  });
  it('never gives an empty range (one sample, all zeros, nothing)', () => {
    expect(domainOf([[{ t: 5, v: 0 }]])).toEqual({ t0: 5, t1: 6, v0: 0, v1: 1 });
    expect(domainOf([])).toEqual({ t0: 0, t1: 1, v0: 0, v1: 1 });
  });
});

describe('linePath', () => {
  it('maps the first sample to the left, the last to the right, 0 to the bottom', () => {
    const d = { t0: 0, t1: 100, v0: 0, v1: 50 };
    expect(linePath([{ t: 0, v: 0 }, { t: 50, v: 25 }, { t: 100, v: 50 }], d, 200, 80)).toBe('M0 80 L100 40 L200 0');
  });
  it('clamps values outside the domain to the box', () => {
    expect(linePath([{ t: 0, v: 150 }, { t: 1, v: -5 }], { t0: 0, t1: 1, v0: 0, v1: 100 }, 10, 10)).toBe('M0 0 L10 10');
  });
});

describe('seriesBy', () => {
  it('groups rows per key, each series in time order', () => {
    const rows = [
      { gpu: 1, at: 20, u: 9 },
      { gpu: 0, at: 20, u: 5 },
      { gpu: 0, at: 10, u: 4 },
    ];
    const s = seriesBy(rows, (r) => `GPU ${r.gpu}`, (r) => ({ t: r.at, v: r.u }));
    expect([...s.keys()]).toEqual(['GPU 1', 'GPU 0']);
    expect(s.get('GPU 0')).toEqual([{ t: 10, v: 4 }, { t: 20, v: 5 }]);
  });
});

describe('position', () => {
  it('places the latest sample, clamped like the line', () => {
    const d = { t0: 0, t1: 10, v0: 0, v1: 100 };
    expect(position({ t: 10, v: 50 }, d, 320, 90)).toEqual({ x: 320, y: 45 });
    expect(position({ t: 0, v: 250 }, d, 320, 90)).toEqual({ x: 0, y: 0 });
  });
});

describe('gaps', () => {
  // One sample a minute, then none for 5 minutes, then one, then none for 4.
  const minute = 60_000;
  const points = [0, 1, 2, 3, 8, 12, 13, 14].map((m) => ({ t: m * minute, v: 10 }));

  it('takes 2.5 times the usual step as the most two joined samples may be apart', () => {
    expect(gapThreshold(points)).toBe(2.5 * minute);
    expect(gapThreshold(points.slice(0, 2))).toBe(Infinity);
  });

  it('breaks the line where samples are missing, and only there', () => {
    const d = { t0: 0, t1: 14 * minute, v0: 0, v1: 10 };
    const path = linePath(points, d, 140, 10, gapThreshold(points));
    expect(path).toBe('M0 0 L10 0 L20 0 L30 0 M80 0 M120 0 L130 0 L140 0');
    // Without a gap the same samples are one line.
    expect(linePath(points, d, 140, 10)).not.toContain('M80');
  });

  it('finds the samples alone between gaps, drawn as dots', () => {
    expect(isolated(points, gapThreshold(points))).toEqual([{ t: 8 * minute, v: 10 }]);
    expect(isolated([{ t: 5, v: 1 }], Infinity)).toEqual([{ t: 5, v: 1 }]);
  });
});
