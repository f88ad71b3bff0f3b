// The worker log panel's rules, kept apart from React: how a follow read
// joins the lines already shown, what an error of the logs route means, and
// the one list of lines the panel shows from three sources: the bootstrap
// (the install's output, kept in the action log's steps), the agent's
// events and the engine's own output (the agent's `engine_output` events).
import { ApiError } from '../api/client';
import type { ActionLogEntry, InstanceLogs, InstanceStatus, LogEvent } from '../api/types';

/** The most lines the panel keeps (the API's own cap on one read). */
export const MAX_LINES = 1000;
/** How often follow mode asks the worker for what is new. */
export const FOLLOW_INTERVAL_MS = 2000;
export const TAIL_CHOICES = [100, 200, 500, 1000] as const;

const key = (e: LogEvent) => `${e.ts}\u0000${e.event}\u0000${e.detail}`;

/**
 * The lines shown after a follow read: the previous ones, then those of
 * `page` not already there (a read `since` the last line repeats nothing,
 * but two reads may overlap after a retry), the last `max` kept.
 */
export function mergeLogs(previous: InstanceLogs | undefined, page: InstanceLogs, max = MAX_LINES): InstanceLogs {
  if (!previous) return { events: page.events.slice(-max), dropped: page.dropped };
  const seen = new Set(previous.events.map(key));
  const fresh = page.events.filter((e) => !seen.has(key(e)));
  return { events: [...previous.events, ...fresh].slice(-max), dropped: previous.dropped + page.dropped };
}

export type LogsProblem =
  | { kind: 'no_worker'; message: string }
  | { kind: 'unreachable'; message: string; requestId?: string }
  | { kind: 'other'; error: unknown };

/** What an error of `GET /instances/{id}/logs` tells the user. */
export function logsProblem(error: unknown): LogsProblem {
  if (error instanceof ApiError) {
    if (error.code === 'NO_WORKER') return { kind: 'no_worker', message: error.message };
    if (['WORKER_UNREACHABLE', 'WORKER_TIMEOUT', 'WORKER_BAD_ANSWER'].includes(error.code))
      return { kind: 'unreachable', message: error.message, requestId: error.requestId };
  }
  return { kind: 'other', error };
}

/**
 * Whether an instance in `status` may have a worker to read: from `ready`
 * until it is terminated. Before, the panel does not ask: the API would
 * answer 409 NO_WORKER, and while `starting` the node's relay may not
 * answer yet (a 502, an error in the browser's console).
 */
export function hasWorker(status: InstanceStatus): boolean {
  return ['ready', 'draining', 'worker_dead', 'startup_failed', 'terminating'].includes(status);
}

/** Whether a scrolled box shows its bottom (within a few pixels). */
export function atBottom(box: { scrollTop: number; scrollHeight: number; clientHeight: number }): boolean {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 8;
}

export type LogSource = 'bootstrap' | 'agent' | 'engine';
export const LOG_SOURCES: readonly LogSource[] = ['bootstrap', 'agent', 'engine'];

/** One line of the panel, whatever its source. */
export interface LogLine {
  ts: string;
  source: LogSource;
  level: LogEvent['level'];
  /** The step or event it belongs to (`PACKAGES`, `engine_ready`...). */
  event: string;
  text: string;
  truncated: boolean;
}

/** The install step's name without its prefix: WORKER_SSH_PACKAGES → PACKAGES. */
const stepName = (action: string) => action.replace(/^WORKER_SSH_/, '');

/**
 * The bootstrap's lines: the output each install step kept
 * (`metadata.output_tail`), at the step's end; a failed step's error as
 * its last line.
 */
export function bootstrapLines(actions: readonly ActionLogEntry[] | undefined): LogLine[] {
  const lines: LogLine[] = [];
  for (const a of actions ?? []) {
    const metadata: Record<string, unknown> = a.metadata ?? {};
    const tail = metadata.output_tail;
    const output = Array.isArray(tail) ? tail.filter((t): t is string => typeof t === 'string') : [];
    if (!a.action_type.startsWith('WORKER_SSH_') || (output.length === 0 && a.status !== 'failed')) continue;
    const ts = a.finished_at ?? a.started_at;
    const event = stepName(a.action_type);
    for (const text of output) lines.push({ ts, source: 'bootstrap', level: 'info', event, text, truncated: false });
    if (a.status === 'failed') lines.push({ ts, source: 'bootstrap', level: 'error', event, text: `${a.error_code ?? 'failed'}: ${a.error_message ?? ''}`, truncated: false });
  }
  return lines;
}

/** The worker's events as lines: the engine's output shows its own line, an agent event its fields. */
export function workerLines(logs: InstanceLogs | undefined): LogLine[] {
  return (logs?.events ?? []).map((e) => {
    if (e.event === 'engine_output') {
      let text = e.detail;
      try {
        const fields: unknown = JSON.parse(e.detail);
        if (fields && typeof fields === 'object' && 'line' in fields && typeof fields.line === 'string') text = fields.line;
      } catch {
        // A cut detail is no longer JSON: shown as it came.
      }
      return { ts: e.ts, source: 'engine', level: e.level, event: e.event, text, truncated: e.truncated };
    }
    return { ts: e.ts, source: 'agent', level: e.level, event: e.event, text: e.detail, truncated: e.truncated };
  });
}

/** The file the Download button saves: one line per line shown, times in UTC. */
export function logText(lines: readonly LogLine[]): string {
  return lines.map((l) => `${l.ts} ${l.source} ${l.level} ${l.event} ${l.text}${l.truncated ? ' (cut)' : ''}`.trimEnd() + '\n').join('');
}
