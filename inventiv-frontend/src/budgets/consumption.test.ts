import { describe, expect, it } from 'vitest';
import type { Budget } from '../api/types';
import { meter, meters, parseAmount, parseThresholds, percentOf } from './consumption';

const budget = (over: Partial<Budget> = {}): Budget => ({
  id: 'b',
  scope: 'organization',
  api_key_id: null,
  share_id: null,
  monthly_eur: '100.0000',
  monthly_tokens: 1000,
  monthly_gpu_hours: null,
  thresholds: [50, 80, 100],
  hard_limit: true,
  stop_running: false,
  created_at: '2026-12-01T00:00:00Z',
  updated_at: '2026-12-01T00:00:00Z',
  consumption: {
    month: '2026-12',
    eur: '40.0000',
    tokens: 850,
    gpu_hours: 0,
    reserved_eur: '1.0000',
    reserved_tokens: 20,
    forecast_eur: '120.0000',
    forecast_tokens: 900,
    forecast_gpu_hours: 0,
  },
  ...over,
});

describe('budget meters', () => {
  it('one meter per limit set, with the thresholds passed', () => {
    const [eur, tokens] = meters(budget());
    expect(meters(budget())).toHaveLength(2);
    expect(eur).toMatchObject({ label: 'EUR', used: 40, limit: 100, percent: 40, passed: [] });
    expect(eur?.shown).toEqual({ used: '40.0000', reserved: '1.0000', forecast: '120.0000', limit: '100.0000' });
    // Below every threshold, but the forecast runs past the limit.
    expect(eur?.tone).toBe('warn');
    expect(tokens).toMatchObject({ percent: 85, passed: [50, 80], tone: 'warn', reserved: 20 });
  });
  it('a reached limit is over; a quiet month is ok', () => {
    expect(meter('tokens', 1000, 0, 1000, 1000, [50, 100]).tone).toBe('over');
    expect(meter('gpu_hours', 1, 0, 2, 10, [50]).tone).toBe('ok');
  });
  it('a zero limit is reached by anything', () => {
    expect(percentOf(0, 0)).toBe(0);
    expect(percentOf(1, 0)).toBe(Infinity);
    expect(meter('eur', 0.01, 0, 0.01, 0, [50]).tone).toBe('over');
  });
  it('parses thresholds and amounts within their bounds', () => {
    expect(parseThresholds('80, 50 100 50')).toEqual([50, 80, 100]);
    expect(parseThresholds('150')).toBeNull();
    expect(parseThresholds('0')).toBeNull();
    expect(parseThresholds('')).toEqual([]);
    expect(parseAmount('', 4)).toBeNull();
    expect(parseAmount('12.5', 4)).toBe('12.5');
    expect(parseAmount('-1', 4)).toBeUndefined();
    expect(parseAmount('1.23456', 4)).toBeUndefined();
    expect(parseAmount('1000', 0)).toBe('1000');
    expect(parseAmount('1.5', 0)).toBeUndefined();
  });
});
