import { describe, expect, it } from 'vitest';
import { formatRate, keyLabel, localToIso, NO_FILTERS, requestsQuery, statusTone } from './requests';

describe('requestsQuery', () => {
  it('sends only the limit without filters', () => {
    expect(requestsQuery(NO_FILTERS, 50)).toEqual({ limit: 50 });
  });
  it('sends every filter set, trimmed, times in UTC, and the cursor', () => {
    const from = '2026-03-01T10:00';
    const q = requestsQuery(
      { model: ' acme/llama ', apiKeyId: 'k1', status: '5xx', from, to: '', requestId: ' r-1 ' },
      20,
      'MTIz',
    );
    expect(q).toEqual({
      limit: 20,
      model: 'acme/llama',
      api_key_id: 'k1',
      status: '5xx',
      from: new Date(from).toISOString(),
      request_id: 'r-1',
      before: 'MTIz',
    });
  });
  it('leaves out blank text and an invalid time', () => {
    expect(requestsQuery({ ...NO_FILTERS, model: '   ', to: 'not a time' }, 50)).toEqual({ limit: 50 });
  });
});

describe('localToIso', () => {
  it('reads a local date and time, nothing for empty or invalid', () => {
    expect(localToIso('2026-03-01T10:00')).toBe(new Date(2026, 2, 1, 10, 0).toISOString());
    expect(localToIso('')).toBeUndefined();
    expect(localToIso('yesterday')).toBeUndefined();
  });
});

describe('keyLabel', () => {
  it('names a session, a hidden key and a shown one', () => {
    expect(keyLabel({ api_key_id: null, api_key_name: null, api_key_prefix: null })).toBe('Session');
    expect(keyLabel({ api_key_id: 'k', api_key_name: null, api_key_prefix: null })).toBe("Another member's key");
    expect(keyLabel({ api_key_id: 'k', api_key_name: 'ci', api_key_prefix: 'inv_abc' })).toBe('ci (inv_abc…)');
  });
});

describe('statusTone and formatRate', () => {
  it('tones successes, refusals and failures', () => {
    expect([200, 399, 400, 429, 499, 500, 502].map(statusTone)).toEqual(['ok', 'ok', 'warn', 'warn', 'warn', 'bad', 'bad']);
  });
  it('writes a rate with one decimal', () => {
    expect(formatRate(0)).toBe('0 %');
    expect(formatRate(0.025)).toBe('2.5 %');
    expect(formatRate(1)).toBe('100 %');
    expect(formatRate(Number.NaN)).toBe('—');
  });
});
