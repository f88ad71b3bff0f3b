import { ApiError } from '../api/client';
import type { InstanceLogs, InstanceStatus, LogEvent } from '../api/types';
import { atBottom, hasWorker, logsProblem, mergeLogs } from './workerLogs';

const line = (second: number, event = 'engine_ready'): LogEvent => ({
  ts: `2026-12-06T10:00:${String(second).padStart(2, '0')}.000Z`,
  event,
  level: 'info',
  detail: '',
  truncated: false,
});
const page = (events: LogEvent[], dropped = 0): InstanceLogs => ({ events, dropped });

describe('worker log rules', () => {
  it('appends what a follow read brings, without repeating a line, up to the cap', () => {
    const first = page([line(1), line(2)], 1);
    const merged = mergeLogs(first, page([line(2), line(3)], 2));
    expect(merged.events.map((e) => e.ts.slice(17, 19))).toEqual(['01', '02', '03']);
    expect(merged.dropped).toBe(3);
    const capped = mergeLogs(merged, page([line(4), line(5)]), 3);
    expect(capped.events.map((e) => e.ts.slice(17, 19))).toEqual(['03', '04', '05']);
    expect(mergeLogs(undefined, page([line(1), line(2), line(3)]), 2).events).toHaveLength(2);
  });

  it('tells no worker yet, an unreachable worker and other errors apart', () => {
    expect(logsProblem(new ApiError(409, 'NO_WORKER', 'not installed yet'))).toEqual({ kind: 'no_worker', message: 'not installed yet' });
    for (const code of ['WORKER_UNREACHABLE', 'WORKER_TIMEOUT', 'WORKER_BAD_ANSWER']) {
      expect(logsProblem(new ApiError(502, code, 'm', 'req-1'))).toEqual({ kind: 'unreachable', message: 'm', requestId: 'req-1' });
    }
    expect(logsProblem(new ApiError(404, 'NOT_FOUND', 'not found')).kind).toBe('other');
  });

  it('asks for a log only while the instance may have a worker', () => {
    expect((['ready', 'worker_dead'] as InstanceStatus[]).every(hasWorker)).toBe(true);
    // While starting, the node's relay may not answer yet (a 502 in the console).
    expect((['provisioning', 'booting', 'installing', 'starting', 'terminated', 'archived'] as InstanceStatus[]).some(hasWorker)).toBe(false);
  });

  it('knows when a box is scrolled to its bottom', () => {
    expect(atBottom({ scrollTop: 600, scrollHeight: 1000, clientHeight: 400 })).toBe(true);
    expect(atBottom({ scrollTop: 300, scrollHeight: 1000, clientHeight: 400 })).toBe(false);
  });
});
