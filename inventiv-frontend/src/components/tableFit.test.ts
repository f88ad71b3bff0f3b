import { fitWidths, MIN_FIT_WIDTH } from './tableFit';

const cols = [
  { id: 'name', size: 400, fixed: false },
  { id: 'model', size: 600, fixed: false },
  { id: 'actions', size: 200, fixed: true },
];

describe('fitWidths', () => {
  it('keeps the saved sizes when they fit, or before anything is measured', () => {
    expect([...fitWidths(cols, 1500).values()]).toEqual([400, 600, 200]);
    expect([...fitWidths(cols, null).values()]).toEqual([400, 600, 200]);
  });

  it('shrinks the other columns in proportion, never the row actions', () => {
    const w = fitWidths(cols, 700);
    expect(w.get('actions')).toBe(200);
    expect(w.get('name')).toBe(200);
    expect(w.get('model')).toBe(300);
    expect([...w.values()].reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(700);
  });

  it('stops at a readable minimum', () => {
    const w = fitWidths(cols, 250);
    expect(w.get('name')).toBe(MIN_FIT_WIDTH);
    expect(w.get('actions')).toBe(200);
  });
});
