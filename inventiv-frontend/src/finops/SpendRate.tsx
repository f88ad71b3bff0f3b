// The top bar's spend: the current hourly rate and the month-end forecast
// (forecast.ts), linked to the FinOps page. Shown only to roles that may read
// FinOps; nothing at all while loading or on an error (the page says more).
import { Link } from 'react-router';
import { useCan } from '../auth/useMe';
import { formatEur } from '../components/format';
import { useCurrentCost } from './api';
import { monthEndForecast } from './forecast';

export function SpendRate() {
  const allowed = useCan('ViewFinOps');
  const current = useCurrentCost(allowed);
  if (!allowed || !current.data) return null;
  const c = current.data;
  const forecast = monthEndForecast(c.month_to_date_eur, c.per_hour_eur, new Date());
  const rate = formatEur(c.per_hour_eur, 'h');
  const title = `${rate} for the ${c.running_instances} running instance${c.running_instances === 1 ? '' : 's'}; ${formatEur(
    c.month_to_date_eur,
  )} spent since the 1st (UTC), plus this rate until the month ends.`;
  return (
    <Link to="/finops" className="topbar-spend" title={title}>
      <span className="num">{rate}</span>
      {forecast === null ? null : (
        <>
          <span aria-hidden="true"> · </span>
          <span className="num">~{formatEur(forecast)} by month end</span>
        </>
      )}
    </Link>
  );
}
