// Offerings (provider side), their prices and shares, and what other
// organizations offer to the current one (consumer side), in the query cache.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type {
  Available,
  CreateOffering,
  CreateShare,
  NewPrice,
  Offering,
  OfferingPreferences,
  PriceVersion,
  Share,
  UpdateOffering,
  UpdateShare,
} from '../api/types';

const BASE = '/organizations/current/offerings';

export const offeringKeys = {
  list: ['offerings'] as const,
  shares: (offering: string) => ['offerings', offering, 'shares'] as const,
  available: ['available-offerings'] as const,
  preferences: ['offering-preferences'] as const,
};

export function useOfferings(enabled = true) {
  return useQuery({ queryKey: offeringKeys.list, queryFn: () => api<Offering[]>(BASE), enabled });
}

/** A mutation that refreshes the offerings (and what depends on them) once done. */
function useOfferingMutation<V, R>(fn: (vars: V) => Promise<R>) {
  const client = useQueryClient();
  return useMutation({ mutationFn: fn, onSuccess: () => client.invalidateQueries({ queryKey: offeringKeys.list }) });
}

export function usePublishOffering() {
  return useOfferingMutation((body: CreateOffering) => api<Offering>(BASE, { method: 'POST', body }));
}

export function useUpdateOffering() {
  return useOfferingMutation(({ id, body }: { id: string; body: UpdateOffering }) =>
    api<Offering>(`${BASE}/${id}`, { method: 'PATCH', body }),
  );
}

export function useNewPrice() {
  return useOfferingMutation(({ id, body }: { id: string; body: NewPrice }) =>
    api<PriceVersion>(`${BASE}/${id}/prices`, { method: 'POST', body }),
  );
}

export function useShares(offering: string | null) {
  return useQuery({
    queryKey: offeringKeys.shares(offering ?? ''),
    queryFn: () => api<Share[]>(`${BASE}/${offering}/shares`),
    enabled: offering !== null,
  });
}

export function useCreateShare(offering: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateShare) => api<Share>(`${BASE}/${offering}/shares`, { method: 'POST', body }),
    onSuccess: () => client.invalidateQueries({ queryKey: offeringKeys.shares(offering) }),
  });
}

export function useUpdateShare(offering: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, body }: { id: string; body: UpdateShare }) =>
      api<Share>(`${BASE}/${offering}/shares/${id}`, { method: 'PATCH', body }),
    onSuccess: () => client.invalidateQueries({ queryKey: offeringKeys.shares(offering) }),
  });
}

/** Discovery overrides: `undefined` leaves the organization's preference in force. */
export interface Discovery {
  hide_public?: boolean;
  hide_paid?: boolean;
}

export function useAvailableOfferings(discovery: Discovery) {
  return useQuery({
    queryKey: [...offeringKeys.available, discovery],
    queryFn: () => api<Available[]>('/organizations/current/available-offerings', { query: { ...discovery } }),
  });
}

export function useAcceptOffering() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (offering: string) => api<Available>(`/organizations/current/available-offerings/${offering}/accept`, { method: 'POST' }),
    onSuccess: () => client.invalidateQueries({ queryKey: offeringKeys.available }),
  });
}

/** Withdraws the organization's acceptance: its keys' calls are refused from now on. */
export function useLeaveOffering() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (offering: string) => api<void>(`/organizations/current/available-offerings/${offering}`, { method: 'DELETE' }),
    onSuccess: () => client.invalidateQueries({ queryKey: offeringKeys.available }),
  });
}

export function usePreferences() {
  return useQuery({
    queryKey: offeringKeys.preferences,
    queryFn: () => api<OfferingPreferences>('/organizations/current/offering-preferences'),
  });
}

export function useSetPreferences() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: OfferingPreferences) =>
      api<OfferingPreferences>('/organizations/current/offering-preferences', { method: 'PUT', body }),
    onSuccess: () => {
      client.invalidateQueries({ queryKey: offeringKeys.preferences });
      client.invalidateQueries({ queryKey: offeringKeys.available });
    },
  });
}
