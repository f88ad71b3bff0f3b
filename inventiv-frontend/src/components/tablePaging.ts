// Client-side search and pages of the DataTable: which rows a search keeps
// and which slice of the sorted rows a page shows.

/** Whether `text` holds every word of `query`, in any case and order (an empty query keeps everything). */
export function matchesQuery(text: string, query: string): boolean {
  const haystack = text.toLocaleLowerCase();
  return query
    .toLocaleLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((word) => haystack.includes(word));
}

export interface PageWindow {
  /** The page shown, 0-based, clamped to the pages there are. */
  page: number;
  pages: number;
  /** Row indexes [start, end) of the page. */
  start: number;
  end: number;
}

/** Page `page` of `total` rows by pages of `size`; a page past the end shows the last one. */
export function pageWindow(total: number, page: number, size: number): PageWindow {
  const pages = Math.max(1, Math.ceil(total / size));
  const shown = Math.min(Math.max(0, page), pages - 1);
  return { page: shown, pages, start: shown * size, end: Math.min(total, (shown + 1) * size) };
}
