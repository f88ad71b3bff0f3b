import { describe, expect, it } from 'vitest';
import { gpuUse, gpuUseText } from './api';

describe('a host’s GPUs in use', () => {
  const seats = [
    { instance_id: 'aaaa', gpus: [0, 2], slot: 0, releasing: false },
    { instance_id: 'bbbb', gpus: [3], slot: 1, releasing: true },
  ];

  it('names the instance on each GPU, free ones null', () => {
    expect(gpuUse({ gpu_count: 4, seats })).toEqual([
      { index: 0, instanceId: 'aaaa', releasing: false },
      { index: 1, instanceId: null, releasing: false },
      { index: 2, instanceId: 'aaaa', releasing: false },
      { index: 3, instanceId: 'bbbb', releasing: true },
    ]);
  });

  it('counts the GPUs taken, releasing ones included', () => {
    expect(gpuUseText({ gpu_count: 4, seats })).toBe('3 of 4 in use');
    expect(gpuUseText({ gpu_count: 2, seats: [] })).toBe('0 of 2 in use');
    expect(gpuUseText({ gpu_count: 0, seats: [] })).toBe('none');
  });
});
