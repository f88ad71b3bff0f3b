import { ApiError } from '../api/client';
import type { ActionLogEntry, InstanceLogs, InstanceStatus, LogEvent } from '../api/types';
import { atBottom, bootstrapLines, hasWorker, logsProblem, logText, mergeLogs, workerLines } from './workerLogs';

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

const step = (id: number, action_type: string, output: string[] | null, status: ActionLogEntry['status'] = 'success'): ActionLogEntry =>
  ({
    id,
    action_type,
    status,
    started_at: `2026-12-06T09:59:0${id}.000Z`,
    finished_at: `2026-12-06T09:59:0${id}.500Z`,
    duration_ms: 500,
    error_code: status === 'failed' ? 'BOOTSTRAP_FAILED' : null,
    error_message: status === 'failed' ? 'pip install failed' : null,
    metadata: (output ? { output_tail: output } : {}) as ActionLogEntry['metadata'],
    request_id: null,
  }) as ActionLogEntry;

describe('the log lines of three sources', () => {
  it('takes the bootstrap from the install steps kept output, a failed step ending with its error', () => {
    const lines = bootstrapLines([
      step(1, 'PROVIDER_CREATE', null),
      step(2, 'WORKER_SSH_ACCESSIBLE', null),
      step(3, 'WORKER_SSH_PACKAGES', ['apt-get install haproxy', 'done']),
      step(4, 'WORKER_SSH_AGENT', ['pip install ...'], 'failed'),
    ]);
    expect(lines.map((l) => [l.source, l.event, l.level, l.text])).toEqual([
      ['bootstrap', 'PACKAGES', 'info', 'apt-get install haproxy'],
      ['bootstrap', 'PACKAGES', 'info', 'done'],
      ['bootstrap', 'AGENT', 'info', 'pip install ...'],
      ['bootstrap', 'AGENT', 'error', 'BOOTSTRAP_FAILED: pip install failed'],
    ]);
    expect(lines[0]?.ts).toBe('2026-12-06T09:59:03.500Z');
    expect(bootstrapLines(undefined)).toEqual([]);
  });

  it("shows an engine line's own text, an agent event's fields", () => {
    const lines = workerLines(
      page([
        { ...line(1, 'engine_output'), detail: '{"port":8001,"line":"INFO: GET /health 200"}' },
        { ...line(2, 'engine_output'), detail: '{"port":8001,"line":"INFO: cut', truncated: true },
        { ...line(3, 'register_ok'), detail: '{"boot_id":"b"}' },
      ]),
    );
    expect(lines.map((l) => [l.source, l.text])).toEqual([
      ['engine', 'INFO: GET /health 200'],
      ['engine', '{"port":8001,"line":"INFO: cut'],
      ['agent', '{"boot_id":"b"}'],
    ]);
  });

  it('writes the download one line per line, times in UTC', () => {
    const lines = [...bootstrapLines([step(3, 'WORKER_SSH_PACKAGES', ['done'])]), ...workerLines(page([line(1, 'engine_ready')]))];
    expect(logText(lines)).toBe('2026-12-06T09:59:03.500Z bootstrap info PACKAGES done\n2026-12-06T10:00:01.000Z agent info engine_ready\n');
  });
});
