// What the key edit form sends for a limit (PATCH /api-keys/{id}): the
// field is absent when unchanged, null to remove the limit (an empty input),
// the number to set one.

/** A positive whole number typed in a limit field, or null when empty. */
export function parseLimit(input: string): number | null {
  const n = parseInt(input.trim(), 10);
  return Number.isFinite(n) && n > 0 ? n : null;
}

/** The PATCH value for one limit: undefined (leave it), null (remove) or the new number. */
export function limitChange(current: number | null | undefined, input: string): number | null | undefined {
  const wanted = parseLimit(input);
  return wanted === (current ?? null) ? undefined : wanted;
}
