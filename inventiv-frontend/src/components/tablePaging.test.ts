import { describe, expect, it } from 'vitest';
import { matchesQuery, pageWindow } from './tablePaging';

describe('matchesQuery', () => {
  it('keeps everything for an empty query', () => {
    expect(matchesQuery('anything', '')).toBe(true);
    expect(matchesQuery('anything', '   ')).toBe(true);
  });

  it('needs every word, in any case and order', () => {
    expect(matchesQuery('gpu-box-1 Qwen/Qwen2.5 ready', 'qwen READY')).toBe(true);
    expect(matchesQuery('gpu-box-1 Qwen/Qwen2.5 ready', 'ready box')).toBe(true);
    expect(matchesQuery('gpu-box-1 Qwen/Qwen2.5 ready', 'qwen failed')).toBe(false);
  });
});

describe('pageWindow', () => {
  it('slices pages of the given size', () => {
    expect(pageWindow(80, 0, 25)).toEqual({ page: 0, pages: 4, start: 0, end: 25 });
    expect(pageWindow(80, 3, 25)).toEqual({ page: 3, pages: 4, start: 75, end: 80 });
  });

  it('shows the last page when asked for one past the end (rows went away)', () => {
    expect(pageWindow(30, 5, 25)).toEqual({ page: 1, pages: 2, start: 25, end: 30 });
  });

  it('has one empty page without rows', () => {
    expect(pageWindow(0, 2, 25)).toEqual({ page: 0, pages: 1, start: 0, end: 0 });
    expect(pageWindow(25, 1, 25)).toEqual({ page: 0, pages: 1, start: 0, end: 25 });
  });
});
