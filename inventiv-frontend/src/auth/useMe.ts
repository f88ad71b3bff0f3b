// The caller (GET /auth/me): user, current organization and role. Every
// authenticated page reads it from the query cache.
import { useQuery } from '@tanstack/react-query';
import { api } from '../api/client';
import type { Me } from '../api/types';
import { can, type Action } from './permissions';

export const meKey = ['me'] as const;

export function fetchMe(): Promise<Me> {
  return api<Me>('/auth/me');
}

export function useMe(enabled = true) {
  return useQuery({ queryKey: meKey, queryFn: fetchMe, staleTime: 60_000, retry: false, enabled });
}

/** Whether the caller may do `action` in the current organization. */
export function useCan(action: Action): boolean {
  const { data } = useMe();
  return can(data?.current_organization.role, action);
}
