// The caller (GET /auth/me): user, current organization and role. Every
// authenticated page reads it from the query cache.
import { useQuery } from '@tanstack/react-query';
import { api } from '../api/client';
import { maybeSignedIn, rememberSession } from '../api/session';
import type { Me } from '../api/types';
import { can, type Action } from './permissions';

export const meKey = ['me'] as const;

export async function fetchMe(): Promise<Me> {
  const me = await api<Me>('/auth/me');
  rememberSession(true);
  return me;
}

/** The caller; not asked at all when this browser has no session (`maybeSignedIn`). */
export function useMe(enabled = true) {
  return useQuery({ queryKey: meKey, queryFn: fetchMe, staleTime: 60_000, retry: false, enabled: enabled && maybeSignedIn() });
}

/** Whether the caller may do `action` in the current organization. */
export function useCan(action: Action): boolean {
  const { data } = useMe();
  return can(data?.current_organization.role, action);
}
