import { describe, expect, it } from 'vitest';
import { failureRate } from './RuntimeModelsPage';

describe('failureRate', () => {
  it('is a percentage with one decimal, a dash without traffic', () => {
    expect(failureRate({ requests: 8, failed_requests: 1 })).toBe('12.5 %');
    expect(failureRate({ requests: 3, failed_requests: 0 })).toBe('0 %');
    expect(failureRate({ requests: 0, failed_requests: 0 })).toBe('—');
  });
});
