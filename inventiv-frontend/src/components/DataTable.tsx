// The one table of the app: sortable, resizable, reorderable and hideable
// columns, with the view saved per table id; long lists are virtualized,
// or searched and shown by pages when the page asks (tablePaging.ts).
// Columns shrink to fit the container (tableFit.ts) so the row actions (the
// column with id "actions") stay on screen; on a narrow screen each row
// becomes a card (styles.css), its cells labelled by their column.
import { useLayoutEffect, useMemo, useRef, useState, type KeyboardEvent, type ReactNode, type RefObject } from 'react';
import {
  flexRender,
  getCoreRowModel,
  getSortedRowModel,
  useReactTable,
  type Column,
  type ColumnDef,
  type Header,
  type Row,
} from '@tanstack/react-table';
import { useVirtualizer } from '@tanstack/react-virtual';
import { fitWidths } from './tableFit';
import { matchesQuery, pageWindow } from './tablePaging';
import { useTablePreferences, type TablePreferences } from './tablePreferences';

/** Column meta of a number column: right-aligned, tabular digits. */
export const NUMERIC = { numeric: true } as const;

interface ColumnMeta {
  title?: string;
  numeric?: boolean;
}

/** The id of the row actions column, which keeps its width when the others shrink. */
const ACTIONS = 'actions';

export interface DataTableProps<T> {
  /** Stable id: the key of the saved preferences. */
  id: string;
  /** Accessible name of the table. */
  label: string;
  columns: ColumnDef<T, any>[];
  data: T[];
  getRowId?: (row: T) => string;
  empty?: ReactNode;
  defaults?: Partial<TablePreferences>;
  /** Rows beyond which only the visible ones are rendered. */
  virtualizeAbove?: number;
  toolbar?: ReactNode;
  /** The text a search box looks in, per row; no search box without it. */
  searchText?: (row: T) => string;
  /** Rows per page (after search and sort); all rows on one page without it. */
  pageSize?: number;
}

const ROW_HEIGHT = 41;

function columnTitle<T>(column: Column<T, unknown>): string {
  const header = column.columnDef.header;
  const meta = column.columnDef.meta as ColumnMeta | undefined;
  return meta?.title ?? (typeof header === 'string' ? header : column.id);
}

export function DataTable<T>({
  id,
  label,
  columns,
  data,
  getRowId,
  empty,
  defaults,
  virtualizeAbove = 100,
  toolbar,
  searchText,
  pageSize,
}: DataTableProps<T>) {
  const [query, setQuery] = useState('');
  const [page, setPage] = useState(0);
  const shown = useMemo(
    () => (searchText && query.trim() ? data.filter((row) => matchesQuery(searchText(row), query)) : data),
    [data, searchText, query],
  );
  const columnIds = useMemo(
    () => columns.map((c) => c.id ?? ((c as { accessorKey?: string }).accessorKey as string)),
    [columns],
  );
  const { prefs, setter, reset } = useTablePreferences(id, columnIds, defaults);
  const table = useReactTable({
    data: shown,
    columns,
    getRowId: getRowId ? (row) => getRowId(row) : undefined,
    state: prefs,
    onSortingChange: setter('sorting'),
    onColumnVisibilityChange: setter('columnVisibility'),
    onColumnOrderChange: setter('columnOrder'),
    onColumnSizingChange: setter('columnSizing'),
    getCoreRowModel: getCoreRowModel(),
    getSortedRowModel: getSortedRowModel(),
    enableColumnResizing: true,
    columnResizeMode: 'onChange',
    defaultColumn: { size: 150, minSize: 60, maxSize: 800 },
  });

  const order = useMemo(() => {
    const saved = prefs.columnOrder.filter((c) => columnIds.includes(c));
    return [...saved, ...columnIds.filter((c) => !saved.includes(c))];
  }, [prefs.columnOrder, columnIds]);

  const move = (columnId: string, to: number) => {
    const next = order.filter((c) => c !== columnId);
    next.splice(Math.max(0, Math.min(next.length, to)), 0, columnId);
    table.setColumnOrder(next);
  };

  const sorted = table.getRowModel().rows;
  const paging = pageWindow(sorted.length, page, pageSize ?? Math.max(1, sorted.length));
  const rows = pageSize ? sorted.slice(paging.start, paging.end) : sorted;
  const scrollRef = useRef<HTMLDivElement>(null);
  const virtualize = rows.length > virtualizeAbove;
  const virtualizer = useVirtualizer({
    count: virtualize ? rows.length : 0,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
  });
  const leafColumns = table.getVisibleLeafColumns();
  const visibleColumns = leafColumns.length;
  const available = useWidth(scrollRef);
  const widths = fitWidths(
    leafColumns.map((c) => ({ id: c.id, size: c.getSize(), fixed: c.id === ACTIONS })),
    available,
  );
  const tableWidth = [...widths.values()].reduce((sum, w) => sum + w, 0);
  const widthOf = (id: string) => widths.get(id) ?? 0;

  let body: ReactNode;
  if (rows.length === 0) {
    body = (
      <tr>
        <td colSpan={visibleColumns} className="empty-cell">
          {data.length > 0 ? `Nothing matches “${query.trim()}”.` : (empty ?? 'Nothing here yet.')}
        </td>
      </tr>
    );
  } else if (virtualize) {
    const items = virtualizer.getVirtualItems();
    const top = items[0]?.start ?? 0;
    const bottom = virtualizer.getTotalSize() - (items.at(-1)?.end ?? 0);
    body = (
      <>
        {top > 0 ? <tr aria-hidden="true" style={{ height: top }} /> : null}
        {items.map((item) => {
          const row = rows[item.index];
          return row ? <DataRow key={row.id} row={row} widthOf={widthOf} /> : null;
        })}
        {bottom > 0 ? <tr aria-hidden="true" style={{ height: bottom }} /> : null}
      </>
    );
  } else {
    body = rows.map((row) => <DataRow key={row.id} row={row} widthOf={widthOf} />);
  }

  return (
    <div className="data-table">
      <div className="table-toolbar">
        <div className="table-toolbar-left">
          {searchText ? (
            <input
              type="search"
              className="table-search"
              aria-label={`Search ${label}`}
              placeholder="Search…"
              value={query}
              onChange={(e) => {
                setQuery(e.target.value);
                setPage(0);
              }}
            />
          ) : null}
          {toolbar}
        </div>
        <ColumnsMenu
          tableLabel={label}
          order={order}
          column={(cid) => table.getColumn(cid)}
          onMove={move}
          onReset={reset}
        />
      </div>
      <div className={virtualize ? 'table-scroll table-scroll-virtual' : 'table-scroll'} ref={scrollRef}>
        <table aria-label={label} aria-rowcount={virtualize ? rows.length + 1 : undefined} style={{ width: tableWidth }}>
          <thead>
            {table.getHeaderGroups().map((group) => (
              <tr key={group.id}>
                {group.headers.map((header) => (
                  <HeaderCell key={header.id} header={header} order={order} onMove={move} width={widthOf(header.column.id)} />
                ))}
              </tr>
            ))}
          </thead>
          <tbody>{body}</tbody>
        </table>
      </div>
      {pageSize && paging.pages > 1 ? (
        <nav className="pager" aria-label={`Pages of ${label}`}>
          <span className="muted" role="status">
            Rows {paging.start + 1}–{paging.end} of {sorted.length}
          </span>
          <button type="button" className="button button-small" disabled={paging.page === 0} onClick={() => setPage(paging.page - 1)}>
            Previous
          </button>
          <span>
            Page {paging.page + 1} of {paging.pages}
          </span>
          <button type="button" className="button button-small" disabled={paging.page >= paging.pages - 1} onClick={() => setPage(paging.page + 1)}>
            Next
          </button>
        </nav>
      ) : null}
    </div>
  );
}

/** The width of `ref`'s content box, followed as it changes; null until measured (or without ResizeObserver). */
function useWidth(ref: RefObject<HTMLElement | null>): number | null {
  const [width, setWidth] = useState<number | null>(null);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === 'undefined') return undefined;
    const observer = new ResizeObserver((entries) => {
      const box = entries[0]?.contentRect;
      if (box) setWidth(Math.floor(box.width));
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, [ref]);
  return width;
}

function cellClass<T>(column: Column<T, unknown>): string | undefined {
  const meta = column.columnDef.meta as ColumnMeta | undefined;
  if (column.id === ACTIONS) return 'actions-cell';
  return meta?.numeric ? 'num' : undefined;
}

function DataRow<T>({ row, widthOf }: { row: Row<T>; widthOf: (id: string) => number }) {
  return (
    <tr>
      {row.getVisibleCells().map((cell) => (
        <td key={cell.id} style={{ width: widthOf(cell.column.id) }} className={cellClass(cell.column)} data-label={columnTitle(cell.column)}>
          {flexRender(cell.column.columnDef.cell, cell.getContext())}
        </td>
      ))}
    </tr>
  );
}

function HeaderCell<T>({
  header,
  order,
  onMove,
  width,
}: {
  header: Header<T, unknown>;
  order: string[];
  onMove: (id: string, to: number) => void;
  width: number;
}) {
  const column = header.column;
  const sorted = column.getIsSorted();
  const title = columnTitle(column);
  const [dropTarget, setDropTarget] = useState(false);
  const ariaSort = sorted === 'asc' ? 'ascending' : sorted === 'desc' ? 'descending' : column.getCanSort() ? 'none' : undefined;
  const onResizeKey = (e: KeyboardEvent) => {
    const step = e.shiftKey ? 50 : 10;
    if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
      e.preventDefault();
      const size = column.getSize() + (e.key === 'ArrowRight' ? step : -step);
      header.getContext().table.setColumnSizing((old) => ({ ...old, [column.id]: Math.max(60, Math.min(800, size)) }));
    }
  };
  return (
    <th
      scope="col"
      aria-sort={ariaSort}
      style={{ width }}
      className={[dropTarget ? 'drop-target' : '', cellClass(column) ?? ''].join(' ').trim() || undefined}
      onDragOver={(e) => {
        if (e.dataTransfer.types.includes('text/x-column')) {
          e.preventDefault();
          setDropTarget(true);
        }
      }}
      onDragLeave={() => setDropTarget(false)}
      onDrop={(e) => {
        e.preventDefault();
        setDropTarget(false);
        const moved = e.dataTransfer.getData('text/x-column');
        if (moved && moved !== column.id) onMove(moved, order.filter((c) => c !== moved).indexOf(column.id));
      }}
    >
      <span
        className="drag-grip"
        draggable
        title={`Drag to move ${title}`}
        aria-hidden="true"
        onDragStart={(e) => {
          e.dataTransfer.setData('text/x-column', column.id);
          e.dataTransfer.effectAllowed = 'move';
        }}
      >
        ⠿
      </span>
      {header.isPlaceholder ? null : column.getCanSort() ? (
        <button type="button" className="sort-button" onClick={column.getToggleSortingHandler()} title={`Sort by ${title}`}>
          {flexRender(column.columnDef.header, header.getContext())}
          <span className="sort-indicator" aria-hidden="true">
            {sorted === 'asc' ? '▲' : sorted === 'desc' ? '▼' : '↕'}
          </span>
        </button>
      ) : (
        <span className="header-text">{flexRender(column.columnDef.header, header.getContext())}</span>
      )}
      {column.getCanResize() ? (
        <div
          role="separator"
          aria-orientation="vertical"
          aria-label={`Resize column ${title}`}
          aria-valuenow={column.getSize()}
          aria-valuemin={60}
          aria-valuemax={800}
          tabIndex={0}
          className={column.getIsResizing() ? 'resizer resizing' : 'resizer'}
          onMouseDown={header.getResizeHandler()}
          onTouchStart={header.getResizeHandler()}
          onDoubleClick={() => column.resetSize()}
          onKeyDown={onResizeKey}
          onClick={(e) => e.stopPropagation()}
        />
      ) : null}
    </th>
  );
}

interface MenuProps<T> {
  tableLabel: string;
  order: string[];
  column: (id: string) => Column<T, unknown> | undefined;
  onMove: (id: string, to: number) => void;
  onReset: () => void;
}

function ColumnsMenu<T>({ tableLabel, order, column, onMove, onReset }: MenuProps<T>) {
  return (
    <details className="columns-menu">
      <summary className="button">Columns</summary>
      <div className="columns-menu-panel" role="group" aria-label={`Columns of ${tableLabel}`}>
        <ul>
          {order.map((cid, index) => {
            const c = column(cid);
            if (!c) return null;
            const title = columnTitle(c);
            return (
              <li key={cid}>
                <label>
                  <input
                    type="checkbox"
                    checked={c.getIsVisible()}
                    disabled={!c.getCanHide()}
                    onChange={c.getToggleVisibilityHandler()}
                  />
                  {title}
                </label>
                <span className="move-buttons">
                  <button type="button" className="icon-button" aria-label={`Move ${title} left`} disabled={index === 0} onClick={() => onMove(cid, index - 1)}>
                    ↑
                  </button>
                  <button
                    type="button"
                    className="icon-button"
                    aria-label={`Move ${title} right`}
                    disabled={index === order.length - 1}
                    onClick={() => onMove(cid, index + 1)}
                  >
                    ↓
                  </button>
                </span>
              </li>
            );
          })}
        </ul>
        <button type="button" className="button button-small" onClick={onReset}>
          Reset view
        </button>
      </div>
    </details>
  );
}
