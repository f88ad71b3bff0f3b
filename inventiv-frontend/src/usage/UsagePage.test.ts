import { describe, expect, it } from 'vitest';
import { usageQuery, usageTotals } from './UsagePage';

describe('usageQuery', () => {
  it('spans the last N days up to now, grouped as asked', () => {
    const now = new Date('2026-11-23T12:00:00Z');
    expect(usageQuery('day', 7, now)).toEqual({ group_by: 'day', from: '2026-11-16T12:00:00.000Z', to: '2026-11-23T12:00:00.000Z' });
  });
});

describe('usageTotals', () => {
  it('adds every column exactly', () => {
    const lines = [
      { group: 'a', requests: 3, prompt_tokens: 30, completion_tokens: 12, cached_prompt_tokens: 16, reasoning_tokens: 4, errors: 1 },
      { group: 'b', requests: 2, prompt_tokens: 5, completion_tokens: 7, cached_prompt_tokens: 0, reasoning_tokens: 0, errors: 0 },
    ];
    expect(usageTotals(lines)).toEqual({
      requests: 5,
      prompt_tokens: 35,
      completion_tokens: 19,
      cached_prompt_tokens: 16,
      reasoning_tokens: 4,
      errors: 1,
    });
    expect(usageTotals([])).toEqual({ requests: 0, prompt_tokens: 0, completion_tokens: 0, cached_prompt_tokens: 0, reasoning_tokens: 0, errors: 0 });
  });
});
