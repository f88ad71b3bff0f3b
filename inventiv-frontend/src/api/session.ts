// The session's access token, in memory only. The dashboard's own calls
// use the HttpOnly cookies; the token is needed where a header is: the
// OpenAI-compatible `/v1` routes the playground calls.
//
// Beside it, a hint in localStorage that this browser has a session (it
// logged in and has not logged out or been refused since). The cookies are
// HttpOnly, so without the hint the only way to know is to ask the API and
// get a 401: a logged-out visit goes straight to the login page instead. The
// hint grants nothing; the API still decides.

const SIGNED_IN = 'inventiv.signed-in';

let token: { value: string; expiresAt: number } | null = null;

export function setAccessToken(value: string, expiresInSecs: number): void {
  token = { value, expiresAt: Date.now() + expiresInSecs * 1000 };
  rememberSession(true);
}

/** Forgets the token and the hint (logout, or a session the API refused). */
export function clearAccessToken(): void {
  token = null;
  rememberSession(false);
}

/** Whether this browser may have a session worth asking the API about. */
export function maybeSignedIn(): boolean {
  try {
    return window.localStorage.getItem(SIGNED_IN) === '1';
  } catch {
    return true;
  }
}

/** Records (a session answered) or drops the hint. */
export function rememberSession(signedIn: boolean): void {
  try {
    if (signedIn) window.localStorage.setItem(SIGNED_IN, '1');
    else window.localStorage.removeItem(SIGNED_IN);
  } catch {
    // Storage refused (private mode): the API is simply asked each time.
  }
}

/** The token if it has at least 30 s left. */
export function currentAccessToken(): string | null {
  if (token && token.expiresAt - Date.now() > 30_000) return token.value;
  return null;
}
