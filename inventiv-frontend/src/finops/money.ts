// Series helpers of the FinOps pages. Amounts stay the
// API's decimal strings and are written by components/format.ts (never
// parsed into floats for display); numbers appear only as chart positions.
import type { Series } from '../components/LineChart';

export type Bucket = 'minute' | 'hour' | 'day';
export type CostGroup = 'none' | 'provider' | 'instance_type' | 'model' | 'instance';

/** How far back each bucket size looks: a readable number of points. */
export const BUCKET_SPAN_MS: Record<Bucket, number> = {
  minute: 3 * 3_600_000,
  hour: 2 * 86_400_000,
  day: 30 * 86_400_000,
};

/** The query of a series route (`/finops/cost/series`, `/finops/usage/series`) ending at `now`. */
export function seriesQuery(bucket: Bucket, groupBy: string, now = new Date()) {
  return {
    bucket,
    group_by: groupBy,
    from: new Date(now.getTime() - BUCKET_SPAN_MS[bucket]).toISOString(),
    to: now.toISOString(),
  };
}

/**
 * Rows of a series answer (one per bucket and group) pivoted into one chart
 * series per group, points in time order. `label` names a group (e.g. an
 * instance id → its name).
 */
export function pivot<R extends { bucket: string; group: string }>(
  rows: R[],
  value: (row: R) => number,
  label: (group: string) => string = (g) => g,
): Series[] {
  const byGroup = new Map<string, Series>();
  for (const row of rows) {
    const name = label(row.group);
    let series = byGroup.get(row.group);
    if (!series) {
      series = { name, points: [] };
      byGroup.set(row.group, series);
    }
    series.points.push({ t: Date.parse(row.bucket), v: value(row) });
  }
  const all = [...byGroup.values()];
  for (const s of all) s.points.sort((a, b) => a.t - b.t);
  return all;
}

/** The UTC month of `now` as YYYY-MM (what `/finops/statements?month=` takes). */
export function utcMonth(now = new Date()): string {
  return `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
}
