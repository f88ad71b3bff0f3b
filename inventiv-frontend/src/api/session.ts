// The session's access token, in memory only. The dashboard's own calls
// use the HttpOnly cookies; the token is needed where a header is: the
// OpenAI-compatible `/v1` routes the playground calls.

let token: { value: string; expiresAt: number } | null = null;

export function setAccessToken(value: string, expiresInSecs: number): void {
  token = { value, expiresAt: Date.now() + expiresInSecs * 1000 };
}

export function clearAccessToken(): void {
  token = null;
}

/** The token if it has at least 30 s left. */
export function currentAccessToken(): string | null {
  if (token && token.expiresAt - Date.now() > 30_000) return token.value;
  return null;
}
