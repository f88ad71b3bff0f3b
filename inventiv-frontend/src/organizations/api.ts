// Organizations, members and invitations in the query cache.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import { setAccessToken } from '../api/session';
import type {
  AuditLog,
  CreateInvitation,
  Invitation,
  InvitationPreview,
  Member,
  Membership,
  Organization,
  OrgRole,
  Switched,
  UpdateOrganization,
} from '../api/types';
import { meKey } from '../auth/useMe';

export const orgKeys = {
  list: ['organizations'] as const,
  members: ['members'] as const,
  invitations: ['invitations'] as const,
  audit: ['audit-logs'] as const,
  preview: (token: string) => ['invitation-preview', token] as const,
};

export function useOrganizations() {
  return useQuery({ queryKey: orgKeys.list, queryFn: () => api<Membership[]>('/organizations') });
}

/** After a switch everything cached belongs to the old organization. */
function useResetAll() {
  const client = useQueryClient();
  return () => client.resetQueries();
}

export function useSwitchOrganization() {
  const resetAll = useResetAll();
  return useMutation({
    mutationFn: (organizationId: string) =>
      api<Switched>('/organizations/current', { method: 'PUT', body: { organization_id: organizationId } }),
    onSuccess: async (switched) => {
      setAccessToken(switched.access_token, switched.expires_in);
      await resetAll();
    },
  });
}

export function useCreateOrganization() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: { name: string; slug?: string }) => api<Organization>('/organizations', { method: 'POST', body }),
    onSuccess: () => client.invalidateQueries({ queryKey: orgKeys.list }),
  });
}

export function useUpdateOrganization() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: UpdateOrganization) => api<Organization>('/organizations/current', { method: 'PATCH', body }),
    onSuccess: () => Promise.all([client.invalidateQueries({ queryKey: meKey }), client.invalidateQueries({ queryKey: orgKeys.list })]),
  });
}

export function useLeaveOrganization() {
  const resetAll = useResetAll();
  return useMutation({
    mutationFn: () => api<void>('/organizations/current/leave', { method: 'POST' }),
    onSuccess: () => resetAll(),
  });
}

export function useDeleteOrganization() {
  const resetAll = useResetAll();
  return useMutation({
    mutationFn: (id: string) => api<void>(`/organizations/${id}`, { method: 'DELETE' }),
    onSuccess: () => resetAll(),
  });
}

export function useMembers() {
  return useQuery({ queryKey: orgKeys.members, queryFn: () => api<Member[]>('/organizations/current/members') });
}

export function useChangeRole() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ userId, role }: { userId: string; role: OrgRole }) =>
      api<Member>(`/organizations/current/members/${userId}`, { method: 'PUT', body: { role } }),
    onSuccess: () => client.invalidateQueries({ queryKey: orgKeys.members }),
  });
}

export function useRemoveMember() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (userId: string) => api<void>(`/organizations/current/members/${userId}`, { method: 'DELETE' }),
    onSuccess: () => client.invalidateQueries({ queryKey: orgKeys.members }),
  });
}

export function useInvitations(enabled: boolean) {
  return useQuery({
    queryKey: orgKeys.invitations,
    queryFn: () => api<Invitation[]>('/organizations/current/invitations'),
    enabled,
  });
}

export function useInvite() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateInvitation) => api<Invitation>('/organizations/current/invitations', { method: 'POST', body }),
    onSuccess: () => client.invalidateQueries({ queryKey: orgKeys.invitations }),
  });
}

export function useRevokeInvitation() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api<void>(`/organizations/current/invitations/${id}`, { method: 'DELETE' }),
    onSuccess: () => client.invalidateQueries({ queryKey: orgKeys.invitations }),
  });
}

export function useAuditLogs(enabled: boolean) {
  return useQuery({
    queryKey: orgKeys.audit,
    queryFn: () => api<AuditLog[]>('/organizations/current/audit-logs', { query: { limit: 200 } }),
    enabled,
  });
}

export function useInvitationPreview(token: string) {
  return useQuery({
    queryKey: orgKeys.preview(token),
    queryFn: () => api<InvitationPreview>(`/organizations/invitations/${encodeURIComponent(token)}`),
  });
}

export interface AcceptAnswer {
  organization_id: string;
  user_id: string;
  role: OrgRole;
  session: { access_token: string; expires_in: number } | null;
}

export function useAcceptInvitation(token: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: { display_name?: string; password?: string }) =>
      api<AcceptAnswer>(`/organizations/invitations/${encodeURIComponent(token)}/accept`, { method: 'POST', body }),
    onSuccess: (answer) => {
      if (answer?.session) setAccessToken(answer.session.access_token, answer.session.expires_in);
      // Not awaited, and not the invitation itself: the page moves on at once.
      void client.invalidateQueries({ queryKey: meKey });
      void client.invalidateQueries({ queryKey: orgKeys.list });
    },
  });
}
