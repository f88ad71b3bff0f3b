import { describe, expect, it } from 'vitest';
import { kindLabel, lineQuantity, monthHasEnded } from './monthStatement';

describe('monthHasEnded', () => {
  it('is true from the first instant of the next UTC month on', () => {
    expect(monthHasEnded('2026-03', new Date('2026-03-31T23:59:59Z'))).toBe(false);
    expect(monthHasEnded('2026-03', new Date('2026-04-01T00:00:00Z'))).toBe(true);
    expect(monthHasEnded('2026-12', new Date('2027-01-01T00:00:00Z'))).toBe(true);
    expect(monthHasEnded('2026-12', new Date('2026-12-31T12:00:00Z'))).toBe(false);
    expect(monthHasEnded('not-a-month', new Date('2030-01-01T00:00:00Z'))).toBe(false);
  });
});

describe('statement lines', () => {
  it('name their kind and what they count', () => {
    expect(kindLabel('adjustment')).toBe('Adjustment');
    expect(kindLabel('surprise')).toBe('surprise');
    expect(lineQuantity({ gpu_seconds: '-1785', requests: null, tokens: null })).toBe('-1785 GPU s');
    expect(lineQuantity({ gpu_seconds: null, requests: 3, tokens: 450 })).toBe('3 requests · 450 tokens');
    expect(lineQuantity({ gpu_seconds: null, requests: 3, tokens: 450, cached_tokens: 0 })).toBe('3 requests · 450 tokens');
    expect(lineQuantity({ gpu_seconds: null, requests: 3, tokens: 450, cached_tokens: 64 })).toBe('3 requests · 450 tokens (64 cached)');
    expect(lineQuantity({ gpu_seconds: null, requests: null, tokens: null })).toBe('');
  });
});
