// The one way the app talks to the API: same-origin fetch with the session
// cookies, JSON in and out, the API's error shape turned into `ApiError`,
// and one transparent refresh of the session when the access token expired.
import { currentAccessToken, setAccessToken } from './session';
import type { ErrorBody, TokenResponse } from './types';

/** An error answer of the API, with its stable `code`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId?: string,
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function isUnauthenticated(error: unknown): boolean {
  return error instanceof ApiError && error.status === 401;
}

export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    const ref = error.requestId ? ` (request ${error.requestId})` : '';
    return `${error.message}${error.status >= 500 ? ref : ''}`;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

async function toApiError(response: Response): Promise<ApiError> {
  const retry = Number(response.headers.get('retry-after')) || undefined;
  try {
    const body = (await response.json()) as Partial<ErrorBody>;
    if (body.error) {
      return new ApiError(response.status, body.error.code, body.error.message, body.error.request_id, retry);
    }
  } catch {
    // not JSON: fall through
  }
  return new ApiError(response.status, 'HTTP_' + response.status, response.statusText || 'request failed', undefined, retry);
}

// One refresh at a time: concurrent 401s wait for the same one (the refresh
// token is single-use, a second refresh with it would end the session).
let refreshing: Promise<boolean> | null = null;

/** Trades the refresh cookie for a new access cookie; true when it worked. */
export function refreshSession(): Promise<boolean> {
  refreshing ??= (async () => {
    try {
      const response = await fetch('/auth/refresh', { method: 'POST', credentials: 'include' });
      if (!response.ok) return false;
      const tokens = (await response.json()) as TokenResponse;
      setAccessToken(tokens.access_token, tokens.expires_in);
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

const NO_REFRESH = ['/auth/login', '/auth/refresh', '/auth/logout', '/auth/password-reset/'];

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  body?: unknown;
  query?: Record<string, string | number | boolean | null | undefined>;
  signal?: AbortSignal;
}

export function withQuery(path: string, query?: RequestOptions['query']): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** Calls the API; resolves with the parsed JSON (undefined for 204). */
export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const url = withQuery(path, options.query);
  const init: RequestInit = {
    method: options.method ?? 'GET',
    credentials: 'include',
    headers: { accept: 'application/json' },
    signal: options.signal,
  };
  if (options.body !== undefined) {
    init.headers = { ...init.headers, 'content-type': 'application/json' };
    init.body = JSON.stringify(options.body);
  }
  let response = await fetch(url, init);
  if (response.status === 401 && !NO_REFRESH.some((p) => path.startsWith(p))) {
    const error = await toApiError(response);
    if (error.code !== 'UNAUTHENTICATED') throw error;
    await refreshSession();
    // Retry even when our refresh failed: another tab may have refreshed the
    // shared cookies just before us.
    response = await fetch(url, init);
  }
  if (!response.ok) throw await toApiError(response);
  if (response.status === 204) return undefined as T;
  const type = response.headers.get('content-type') ?? '';
  if (!type.includes('json')) return (await response.text()) as T;
  return (await response.json()) as T;
}

/** A bearer token of the session (for `/v1`), refreshing it when needed. */
export async function sessionToken(): Promise<string | null> {
  const token = currentAccessToken();
  if (token) return token;
  return (await refreshSession()) ? currentAccessToken() : null;
}
