// The worker log panel's rules, kept apart from React: how a follow read
// joins the lines already shown, and what an error of the logs route means.
import { ApiError } from '../api/client';
import type { InstanceLogs, InstanceStatus, LogEvent } from '../api/types';

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
