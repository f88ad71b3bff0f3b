import { act, fireEvent, render, screen, within } from '@testing-library/react';
import type { ColumnDef } from '@tanstack/react-table';
import { DataTable } from './DataTable';
import { storageKey } from './tablePreferences';

interface Row {
  id: string;
  name: string;
  gpus: number;
}

const rows: Row[] = [
  { id: 'a', name: 'bravo', gpus: 4 },
  { id: 'b', name: 'alpha', gpus: 1 },
  { id: 'c', name: 'charlie', gpus: 2 },
];

const columns: ColumnDef<Row>[] = [
  { id: 'name', accessorKey: 'name', header: 'Name' },
  { id: 'gpus', accessorKey: 'gpus', header: 'GPUs' },
];

function names(): string[] {
  const table = screen.getByRole('table', { name: 'Machines' });
  return within(table)
    .getAllByRole('row')
    .slice(1)
    .map((r) => within(r).getAllByRole('cell')[0]?.textContent ?? '');
}

function headers(): string[] {
  return screen.getAllByRole('columnheader').map((h) => h.textContent?.replace(/[⠿▲▼↕]/g, '').trim() ?? '');
}

function renderTable() {
  return render(<DataTable id="machines" label="Machines" columns={columns} data={rows} getRowId={(r) => r.id} />);
}

beforeEach(() => window.localStorage.clear());

describe('DataTable', () => {
  it('shows rows in data order until a header is clicked, then sorts both ways', () => {
    renderTable();
    expect(names()).toEqual(['bravo', 'alpha', 'charlie']);
    const header = screen.getByRole('columnheader', { name: /Name/ });
    expect(header.getAttribute('aria-sort')).toBe('none');

    fireEvent.click(screen.getByRole('button', { name: /^Name/ }));
    expect(names()).toEqual(['alpha', 'bravo', 'charlie']);
    expect(header.getAttribute('aria-sort')).toBe('ascending');

    fireEvent.click(screen.getByRole('button', { name: /^Name/ }));
    expect(names()).toEqual(['charlie', 'bravo', 'alpha']);
    expect(header.getAttribute('aria-sort')).toBe('descending');
  });

  it('sorts numbers as numbers', () => {
    renderTable();
    fireEvent.click(screen.getByRole('button', { name: /^GPUs/ }));
    // TanStack sorts numbers descending first by default.
    const first = names();
    fireEvent.click(screen.getByRole('button', { name: /^GPUs/ }));
    const second = names();
    expect([first, second]).toContainEqual(['alpha', 'charlie', 'bravo']);
    expect([first, second]).toContainEqual(['bravo', 'charlie', 'alpha']);
  });

  it('hides a column from the columns menu and remembers it for the next visit', () => {
    const { unmount } = renderTable();
    expect(headers()).toEqual(['Name', 'GPUs']);

    fireEvent.click(screen.getByRole('checkbox', { name: 'GPUs' }));
    expect(headers()).toEqual(['Name']);
    const saved = JSON.parse(window.localStorage.getItem(storageKey('machines')) ?? '{}');
    expect(saved.columnVisibility).toEqual({ gpus: false });

    unmount();
    renderTable();
    expect(headers()).toEqual(['Name']);
    expect((screen.getByRole('checkbox', { name: 'GPUs' }) as HTMLInputElement).checked).toBe(false);
  });

  it('remembers the sort and the column order per table id', () => {
    const { unmount } = renderTable();
    fireEvent.click(screen.getByRole('button', { name: /^Name/ }));
    fireEvent.click(screen.getByRole('button', { name: 'Move GPUs left' }));
    expect(headers()).toEqual(['GPUs', 'Name']);
    unmount();

    renderTable();
    expect(headers()).toEqual(['GPUs', 'Name']);
    const cells = within(screen.getByRole('table')).getAllByRole('row').slice(1).map((r) => within(r).getAllByRole('cell')[1]?.textContent);
    expect(cells).toEqual(['alpha', 'bravo', 'charlie']);

    // Another table id has its own preferences.
    render(<DataTable id="other" label="Other" columns={columns} data={rows} getRowId={(r) => r.id} />);
    const other = screen.getByRole('table', { name: 'Other' });
    expect(within(other).getAllByRole('columnheader').map((h) => h.textContent?.replace(/[⠿▲▼↕]/g, '').trim())).toEqual(['Name', 'GPUs']);
  });

  it('resizes a column with the keyboard and ignores saved columns that no longer exist', () => {
    window.localStorage.setItem(storageKey('machines'), JSON.stringify({ columnVisibility: { gone: false }, sorting: [{ id: 'gone', desc: true }] }));
    renderTable();
    const handle = screen.getByRole('separator', { name: 'Resize column Name' });
    const before = Number(handle.getAttribute('aria-valuenow'));
    act(() => {
      fireEvent.keyDown(handle, { key: 'ArrowRight' });
    });
    expect(Number(screen.getByRole('separator', { name: 'Resize column Name' }).getAttribute('aria-valuenow'))).toBe(before + 10);
    const saved = JSON.parse(window.localStorage.getItem(storageKey('machines')) ?? '{}');
    expect(saved.columnSizing).toEqual({ name: before + 10 });
    expect(saved.sorting).toEqual([]);
  });

  it('says so when there is nothing to show', () => {
    render(<DataTable id="empty" label="Empty" columns={columns} data={[]} empty="No machine." />);
    expect(screen.getByText('No machine.')).toBeTruthy();
  });

  it('searches the rows and shows them by pages, sorted before paging', () => {
    const many: Row[] = Array.from({ length: 60 }, (_, i) => ({ id: String(i), name: `${i % 2 ? 'odd' : 'even'}-${String(i).padStart(2, '0')}`, gpus: i }));
    render(<DataTable id="many" label="Machines" columns={columns} data={many} getRowId={(r) => r.id} searchText={(r) => r.name} pageSize={25} />);
    expect(names()).toHaveLength(25);
    expect(screen.getByText('Rows 1–25 of 60')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Next' }));
    expect(names()[0]).toBe('odd-25');
    fireEvent.click(screen.getByRole('button', { name: 'Next' }));
    expect(names()).toHaveLength(10);
    expect((screen.getByRole('button', { name: 'Next' }) as HTMLButtonElement).disabled).toBe(true);

    // Sorting orders every row, then pages: the first page starts at the top of the whole list.
    fireEvent.click(screen.getByRole('button', { name: /^GPUs/ }));
    fireEvent.click(screen.getByRole('button', { name: 'Previous' }));
    fireEvent.click(screen.getByRole('button', { name: 'Previous' }));
    expect(names()[0]).toBe('odd-59');

    // A search goes back to the first page and counts what it kept.
    fireEvent.change(screen.getByRole('searchbox', { name: 'Search Machines' }), { target: { value: 'ODD' } });
    expect(screen.getByText('Rows 1–25 of 30')).toBeTruthy();
    expect(names().every((n) => n.startsWith('odd'))).toBe(true);
    fireEvent.change(screen.getByRole('searchbox', { name: 'Search Machines' }), { target: { value: 'odd 5' } });
    expect(screen.queryByRole('navigation', { name: 'Pages of Machines' })).toBeNull();
    expect(names()).toEqual(['odd-59', 'odd-57', 'odd-55', 'odd-53', 'odd-51', 'odd-45', 'odd-35', 'odd-25', 'odd-15', 'odd-05']);
    fireEvent.change(screen.getByRole('searchbox', { name: 'Search Machines' }), { target: { value: 'none' } });
    expect(screen.getByText('Nothing matches “none”.')).toBeTruthy();
  });
});
