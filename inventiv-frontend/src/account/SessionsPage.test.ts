import { describe, expect, it } from 'vitest';
import { sessionStatus } from './SessionsPage';

describe('sessionStatus', () => {
  const now = Date.parse('2026-11-23T12:00:00Z');
  it('revoked wins over expiry', () => {
    expect(sessionStatus({ revoked_at: '2026-11-23T11:00:00Z', expires_at: '2026-11-30T00:00:00Z' }, now)).toBe('revoked');
  });
  it('expired once past expires_at, else active', () => {
    expect(sessionStatus({ revoked_at: null, expires_at: '2026-11-23T11:59:59Z' }, now)).toBe('expired');
    expect(sessionStatus({ revoked_at: null, expires_at: '2026-11-23T12:00:01Z' }, now)).toBe('active');
  });
});
