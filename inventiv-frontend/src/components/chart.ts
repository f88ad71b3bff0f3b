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

/** The SVG path ("M x y L x y …") of `points` in a `width` × `height` box. */
export function linePath(points: Point[], domain: Domain, width: number, height: number): string {
  return points
    .map((p, n) => {
      const { x, y } = position(p, domain, width, height);
      return `${n === 0 ? 'M' : 'L'}${x} ${y}`;
    })
    .join(' ');
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
