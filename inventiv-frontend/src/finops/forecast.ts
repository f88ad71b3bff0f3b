// The month-end forecast of the top bar: what was spent since the 1st (UTC)
// plus the current hourly rate kept up until the month ends. An estimate
// (float arithmetic is fine here), unlike the statements' exact amounts.

/** Hours from `now` to the first instant of the next UTC month. */
export function hoursLeftInMonth(now: Date): number {
  const end = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  return Math.max(0, end - now.getTime()) / 3_600_000;
}

/**
 * Spent so far this month + `perHour` × the hours left in the month, in EUR
 * rounded to the cent; null when an amount is not a decimal.
 */
export function monthEndForecast(spentSoFar: string, perHour: string, now: Date): number | null {
  const spent = Number(spentSoFar);
  const rate = Number(perHour);
  if (spentSoFar.trim() === '' || perHour.trim() === '' || !Number.isFinite(spent) || !Number.isFinite(rate)) return null;
  return Math.round((spent + Math.max(0, rate) * hoursLeftInMonth(now)) * 100) / 100;
}
