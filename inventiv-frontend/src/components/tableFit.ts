// Column widths that fit the table's container: a table never grows wider
// than the space it has (its row actions would be off screen). The saved
// sizes are proportions; fixed columns (row actions) keep their size.

export interface FitColumn {
  id: string;
  size: number;
  /** Kept at its size (the row actions): the other columns give way. */
  fixed: boolean;
}

/** Narrowest a shrunk column gets: a few characters and the ellipsis. */
export const MIN_FIT_WIDTH = 72;

/**
 * The width of each column in `available` pixels: the saved sizes when they
 * fit (or nothing is measured yet), else the non-fixed ones scaled down
 * together, none below MIN_FIT_WIDTH (a table of many columns in a narrow
 * space then scrolls inside its own box, its actions column kept in view by
 * `position: sticky`).
 */
export function fitWidths(columns: FitColumn[], available: number | null): Map<string, number> {
  const total = columns.reduce((sum, c) => sum + c.size, 0);
  if (available === null || available <= 0 || total <= available) return new Map(columns.map((c) => [c.id, c.size]));
  const fixed = columns.reduce((sum, c) => sum + (c.fixed ? c.size : 0), 0);
  const flexible = total - fixed;
  const scale = flexible > 0 ? Math.max(0, available - fixed) / flexible : 1;
  return new Map(columns.map((c) => [c.id, c.fixed ? c.size : Math.max(MIN_FIT_WIDTH, Math.floor(c.size * scale))]));
}
