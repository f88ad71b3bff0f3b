import { costEstimate, HOURS_PER_MONTH, pathGaps, sidesBeyond, type PathItem } from './deployPath';

const item = (kind: PathItem['kind'], technical: boolean, economic: boolean): PathItem => ({
  kind,
  itemId: `${kind}-id`,
  name: kind,
  activation: { technical, economic, operational: technical && economic, missing: [] },
});

describe('the deploy path', () => {
  it('lists the items not operational with the sides each misses, in path order', () => {
    const gaps = pathGaps([item('provider', false, false), item('zone', true, true), undefined, item('model', true, false)]);
    expect(gaps.map((g) => [g.kind, g.sides])).toEqual([
      ['provider', ['technical', 'economic']],
      ['model', ['economic']],
    ]);
    expect(pathGaps([item('provider', true, true), undefined])).toEqual([]);
  });

  it('says which needed sides the caller may not switch', () => {
    const gaps = pathGaps([item('provider', false, false), item('model', true, false)]);
    expect(sidesBeyond(gaps, { technical: true, economic: true })).toEqual([]);
    expect(sidesBeyond(gaps, { technical: true, economic: false })).toEqual(['economic']);
    expect(sidesBeyond(pathGaps([item('model', true, false)]), { technical: false, economic: true })).toEqual([]);
  });

  it('estimates the cost per hour, day and month (730 h)', () => {
    expect(costEstimate('1.2500')).toEqual({ hour: 1.25, day: 30, month: 1.25 * HOURS_PER_MONTH });
    expect(costEstimate('0')).toEqual({ hour: 0, day: 0, month: 0 });
    expect(costEstimate('n/a')).toBeNull();
  });
});
