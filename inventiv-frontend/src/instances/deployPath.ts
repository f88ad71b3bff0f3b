// The deploy dialog's rules, kept apart from React: what of the chosen path
// (provider, zone, instance type, model) the organization has not activated
// yet, which sides the one-click "Activate this path" switches, and what the
// chosen instance type costs per hour, day and month.
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { Activation } from '../api/types';

export type ItemKind = 'provider' | 'zone' | 'instance_type' | 'model';
export type Side = 'technical' | 'economic';

/** One item of the path: the activation route's kind and id (a provider's code, else the item's id). */
export interface PathItem {
  kind: ItemKind;
  itemId: string;
  name: string;
  activation: Activation;
}

/** An item of the path with the sides still off. */
export interface Gap extends PathItem {
  sides: Side[];
}

/** The items of the path not operational yet, in path order, with what each misses. */
export function pathGaps(items: readonly (PathItem | undefined)[]): Gap[] {
  return items
    .filter((i): i is PathItem => i !== undefined && !i.activation.operational)
    .map((i) => ({ ...i, sides: (['technical', 'economic'] as const).filter((s) => !i.activation[s]) }));
}

/** The sides the gaps need that the caller may not switch (empty: one click does it all). */
export function sidesBeyond(gaps: readonly Gap[], allowed: Record<Side, boolean>): Side[] {
  const needed = new Set(gaps.flatMap((g) => g.sides));
  return (['technical', 'economic'] as const).filter((s) => needed.has(s) && !allowed[s]);
}

/** Hours in an average month (365 × 24 / 12), as cloud price pages count. */
export const HOURS_PER_MONTH = 730;

/** What an instance type costs while it runs, from its hourly price (a decimal string). */
export function costEstimate(pricePerHour: string): { hour: number; day: number; month: number } | null {
  const hour = Number(pricePerHour);
  if (!Number.isFinite(hour) || hour < 0) return null;
  return { hour, day: hour * 24, month: hour * HOURS_PER_MONTH };
}

/** Switches on, one item after the other, the missing sides of every gap; then the lists read again. */
export function useActivatePath() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (gaps: readonly Gap[]) => {
      for (const g of gaps) {
        const body = Object.fromEntries(g.sides.map((s) => [s, true]));
        await api<Activation>(`/organizations/current/activations/${g.kind}/${encodeURIComponent(g.itemId)}`, { method: 'PUT', body });
      }
    },
    onSettled: () =>
      Promise.all(
        [['providers'], ['zones'], ['instance_types'], ['models']].map((queryKey) => client.invalidateQueries({ queryKey })),
      ),
  });
}
