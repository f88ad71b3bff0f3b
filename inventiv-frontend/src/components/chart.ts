// The arithmetic of the small SVG line charts (LineChart.tsx): scales and
// path strings, kept pure so they are unit-tested without a DOM.

export interface Point {
  /** Milliseconds since the epoch. */
  t: number;
  v: number;
}

export interface Domain {
  t0: number;
  t1: number;
  v0: number;
  v1: number;
}

/**
 * The domain that fits every point: time from the first to the last sample,
 * values from 0 to the largest (or `max` when given, e.g. 100 for a
 * percentage). A flat or single-point series still gets a non-empty range.
 */
export function domainOf(series: Point[][], max?: number): Domain {
  const all = series.flat();
  if (all.length === 0) return { t0: 0, t1: 1, v0: 0, v1: max ?? 1 };
  let t0 = Infinity;
  let t1 = -Infinity;
  let top = 0;
  for (const p of all) {
    t0 = Math.min(t0, p.t);
    t1 = Math.max(t1, p.t);
    top = Math.max(top, p.v);
  }
  if (t1 === t0) t1 = t0 + 1;
  const v1 = max ?? (top > 0 ? top : 1);
  return { t0, t1, v0: 0, v1 };
}

/** Where `p` falls in a `width` × `height` box (values clamped to the domain). */
export function position(p: Point, domain: Domain, width: number, height: number): { x: number; y: number } {
  const v = Math.min(Math.max(p.v, domain.v0), domain.v1);
  return {
    x: round(((p.t - domain.t0) / (domain.t1 - domain.t0)) * width),
    y: round(height - ((v - domain.v0) / (domain.v1 - domain.v0)) * height),
  };
}

/**
 * The SVG path ("M x y L x y …") of `points` in a `width` × `height` box.
 * Two samples further apart than `gap` (ms) are not joined: the line stops
 * and starts again (a missing sample is shown missing, not as a slope).
 */
export function linePath(points: Point[], domain: Domain, width: number, height: number, gap = Infinity): string {
  return points
    .map((p, n) => {
      const { x, y } = position(p, domain, width, height);
      const previous = points[n - 1];
      const jump = n === 0 || (previous !== undefined && p.t - previous.t > gap);
      return `${jump ? 'M' : 'L'}${x} ${y}`;
    })
    .join(' ');
}

/**
 * How far apart two samples may be and still be joined: 2.5 times the
 * series' usual step (the median of its intervals), so a sample or more
 * missing makes a gap while jitter does not. Fewer than three samples: no
 * step to tell, never a gap.
 */
export function gapThreshold(points: Point[]): number {
  if (points.length < 3) return Infinity;
  const steps = points
    .slice(1)
    .map((p, n) => p.t - (points[n]?.t ?? p.t))
    .sort((a, b) => a - b);
  const median = steps[Math.floor(steps.length / 2)] ?? 0;
  return median > 0 ? median * 2.5 : Infinity;
}

/** The samples drawn alone (a gap before and after, or the only one): a line would not show them. */
export function isolated(points: Point[], gap: number): Point[] {
  return points.filter((p, n) => {
    const before = points[n - 1];
    const after = points[n + 1];
    return (before === undefined || p.t - before.t > gap) && (after === undefined || after.t - p.t > gap);
  });
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Samples grouped into one series per key (e.g. one line per GPU), each in time order. */
export function seriesBy<T>(rows: T[], key: (row: T) => string, point: (row: T) => Point): Map<string, Point[]> {
  const out = new Map<string, Point[]>();
  for (const row of rows) {
    const k = key(row);
    const list = out.get(k) ?? [];
    list.push(point(row));
    out.set(k, list);
  }
  for (const list of out.values()) list.sort((a, b) => a.t - b.t);
  return out;
}
