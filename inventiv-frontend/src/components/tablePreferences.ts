// A table's view preferences (sorting, hidden columns, order, widths),
// persisted in localStorage under one key per table id.
import { useCallback, useEffect, useState } from 'react';
import type { ColumnOrderState, ColumnSizingState, SortingState, VisibilityState } from '@tanstack/react-table';

export interface TablePreferences {
  sorting: SortingState;
  columnVisibility: VisibilityState;
  columnOrder: ColumnOrderState;
  columnSizing: ColumnSizingState;
}

export const EMPTY_PREFERENCES: TablePreferences = {
  sorting: [],
  columnVisibility: {},
  columnOrder: [],
  columnSizing: {},
};

export function storageKey(tableId: string): string {
  return `inventiv.table.${tableId}`;
}

/** Reads saved preferences, keeping only what still names a known column. */
export function loadPreferences(tableId: string, columnIds: string[], defaults: Partial<TablePreferences> = {}): TablePreferences {
  const base: TablePreferences = { ...EMPTY_PREFERENCES, ...defaults };
  let raw: string | null = null;
  try {
    raw = window.localStorage.getItem(storageKey(tableId));
  } catch {
    return base;
  }
  if (!raw) return base;
  try {
    const saved = JSON.parse(raw) as Partial<TablePreferences>;
    const known = new Set(columnIds);
    const pick = <V,>(o: Record<string, V> | undefined) =>
      Object.fromEntries(Object.entries(o ?? {}).filter(([k]) => known.has(k))) as Record<string, V>;
    return {
      sorting: Array.isArray(saved.sorting) ? saved.sorting.filter((s) => known.has(s.id)) : base.sorting,
      columnVisibility: { ...base.columnVisibility, ...pick(saved.columnVisibility) },
      columnOrder: Array.isArray(saved.columnOrder) ? saved.columnOrder.filter((id) => known.has(id)) : base.columnOrder,
      columnSizing: pick(saved.columnSizing),
    };
  } catch {
    return base;
  }
}

export function savePreferences(tableId: string, prefs: TablePreferences): void {
  try {
    window.localStorage.setItem(storageKey(tableId), JSON.stringify(prefs));
  } catch {
    // storage full or disabled: preferences just do not persist
  }
}

type Updater<T> = T | ((old: T) => T);

/** State for a table's preferences, saved on every change. */
export function useTablePreferences(tableId: string, columnIds: string[], defaults?: Partial<TablePreferences>) {
  const [prefs, setPrefs] = useState<TablePreferences>(() => loadPreferences(tableId, columnIds, defaults));
  useEffect(() => {
    savePreferences(tableId, prefs);
  }, [tableId, prefs]);
  const setter = useCallback(
    <K extends keyof TablePreferences>(key: K) =>
      (updater: Updater<TablePreferences[K]>) =>
        setPrefs((old) => ({
          ...old,
          [key]: typeof updater === 'function' ? (updater as (o: TablePreferences[K]) => TablePreferences[K])(old[key]) : updater,
        })),
    [],
  );
  const reset = useCallback(() => setPrefs({ ...EMPTY_PREFERENCES, ...defaults }), [defaults]);
  return { prefs, setter, reset };
}
