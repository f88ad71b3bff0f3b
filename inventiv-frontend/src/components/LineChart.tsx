// A small line chart drawn as SVG: one line per series over time, broken
// where samples are missing (chart.ts gapThreshold; a sample alone between
// gaps is a dot), its time span under it, each sample's time and value on
// hover, its last values spelled out for screen readers and in the legend.
// Hand-written
// (about 60 lines with chart.ts) instead of a chart library: the dashboard
// needs only a few time series per page, and a library would add tens of
// kilobytes to every load for features it does not use.
import { domainOf, gapThreshold, isolated, linePath, position, type Point } from './chart';
import { formatValue } from './format';

const time = (t: number) => new Date(t).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

const WIDTH = 320;
const HEIGHT = 90;
const COLORS = ['#2563eb', '#db2777', '#16a34a', '#ea580c', '#7c3aed', '#0891b2', '#ca8a04', '#4b5563'];

export interface Series {
  name: string;
  points: Point[];
}

export function LineChart({ title, series, unit, max }: { title: string; series: Series[]; unit: string; max?: number }) {
  const domain = domainOf(series.map((s) => s.points), max);
  const last = (s: Series) => {
    const p = s.points.at(-1);
    return p ? formatValue(p.v, unit) : 'no data';
  };
  const summary = series.length === 0 ? 'no data yet' : series.map((s) => `${s.name}: ${last(s)}`).join(', ');
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`${title}, latest: ${summary}`} preserveAspectRatio="none">
        <line x1={0} y1={HEIGHT} x2={WIDTH} y2={HEIGHT} className="chart-axis" />
        {series.map((s, n) => {
          const lastPoint = s.points.at(-1);
          const end = lastPoint ? position(lastPoint, domain, WIDTH, HEIGHT) : null;
          const gap = gapThreshold(s.points);
          return (
            <g key={s.name} stroke={COLORS[n % COLORS.length]}>
              <path d={linePath(s.points, domain, WIDTH, HEIGHT, gap)} fill="none" strokeWidth={1.5} vectorEffect="non-scaling-stroke" />
              {/* Samples alone between gaps, and the latest one: visible as dots. */}
              {isolated(s.points, gap).map((p, k) => {
                const at = position(p, domain, WIDTH, HEIGHT);
                return <circle key={k} cx={at.x} cy={at.y} r={1.5} fill={COLORS[n % COLORS.length]} />;
              })}
              {end ? <circle cx={end.x} cy={end.y} r={2} fill={COLORS[n % COLORS.length]} /> : null}
              {/* Hover: each sample's time and value (the browser's own tooltip). */}
              {s.points.map((p, k) => {
                const at = position(p, domain, WIDTH, HEIGHT);
                return (
                  <circle key={`hover-${k}`} cx={at.x} cy={at.y} r={5} fill="transparent" stroke="none" className="chart-hover">
                    <title>{`${s.name}, ${time(p.t)}: ${formatValue(p.v, unit)}`}</title>
                  </circle>
                );
              })}
            </g>
          );
        })}
      </svg>
      <div className="chart-scale muted small" aria-hidden="true">
        <span>
          scale 0 to {formatValue(domain.v1, unit)}
        </span>
        {series.some((s) => s.points.length > 0) ? (
          <span>
            {time(domain.t0)} – {time(domain.t1)}
          </span>
        ) : null}
      </div>
      {series.length === 0 ? <p className="muted small">No data yet.</p> : null}
      <ul className="chart-legend small">
        {series.map((s, n) => (
          <li key={s.name}>
            <span className="chart-swatch" style={{ background: COLORS[n % COLORS.length] }} aria-hidden="true" />
            {s.name}: {last(s)}
          </li>
        ))}
      </ul>
    </figure>
  );
}
