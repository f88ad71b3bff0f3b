import { describe, expect, it } from 'vitest';
import { classifyMargin } from './margin';

describe('classifyMargin', () => {
  it('calls any amount below zero a loss', () => {
    expect(classifyMargin('-12.3400')).toBe('negative');
    expect(classifyMargin('-0.0001')).toBe('negative');
    expect(classifyMargin(' -5 ')).toBe('negative');
  });

  it('calls zero even, whatever its sign or decimals', () => {
    expect(classifyMargin('0')).toBe('zero');
    expect(classifyMargin('-0.0000')).toBe('zero');
    expect(classifyMargin('0.000000000000000000001')).toBe('positive');
  });

  it('calls amounts above zero a gain', () => {
    expect(classifyMargin('3.5')).toBe('positive');
    expect(classifyMargin('+1')).toBe('positive');
  });

  it('knows nothing of what is not a decimal', () => {
    expect(classifyMargin(null)).toBe('unknown');
    expect(classifyMargin(undefined)).toBe('unknown');
    expect(classifyMargin('')).toBe('unknown');
    expect(classifyMargin('n/a')).toBe('unknown');
    expect(classifyMargin('1e3')).toBe('unknown');
  });
});
