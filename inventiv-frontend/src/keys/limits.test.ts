import { describe, expect, it } from 'vitest';
import { limitChange, parseLimit } from './limits';

describe('parseLimit', () => {
  it('reads positive whole numbers, anything else is no limit', () => {
    expect(parseLimit(' 60 ')).toBe(60);
    expect(parseLimit('')).toBeNull();
    expect(parseLimit('0')).toBeNull();
    expect(parseLimit('-3')).toBeNull();
  });
});

describe('limitChange', () => {
  it('leaves an unchanged limit out of the PATCH', () => {
    expect(limitChange(60, '60')).toBeUndefined();
    expect(limitChange(null, '')).toBeUndefined();
  });
  it('sends null to remove a limit (emptied field)', () => {
    expect(limitChange(60, '')).toBeNull();
  });
  it('sends the new number to set or change one', () => {
    expect(limitChange(null, '30')).toBe(30);
    expect(limitChange(60, '120')).toBe(120);
  });
});
