// The organization's hosts in the query cache: the list, one host, its
// history, the key to authorize on them, and the changes (register, verify,
// drain, undrain, remove). Every change refreshes all of them: a
// verification moves the status, the GPUs and the history at once.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { Host, HostHistoryEntry, HostStatus, RegisterHost, SshKey } from '../api/types';

export const hostKeys = {
  all: ['hosts'] as const,
  list: (includeRemoved: boolean) => ['hosts', 'list', includeRemoved] as const,
  one: (id: string) => ['hosts', id] as const,
  history: (id: string) => ['hosts', id, 'history'] as const,
  sshKey: ['organization', 'ssh-key'] as const,
};

export function useHosts(includeRemoved: boolean) {
  return useQuery({
    queryKey: hostKeys.list(includeRemoved),
    queryFn: () => api<Host[]>('/hosts', { query: { limit: 200, include_removed: includeRemoved || undefined } }),
  });
}

export function useHost(id: string) {
  return useQuery({ queryKey: hostKeys.one(id), queryFn: () => api<Host>(`/hosts/${id}`) });
}

/** The host's timeline, oldest first as the API answers. */
export function useHostHistory(id: string) {
  return useQuery({ queryKey: hostKeys.history(id), queryFn: () => api<HostHistoryEntry[]>(`/hosts/${id}/history`) });
}

/** The organization's public key (owners and admins only: made on first request). */
export function useSshKey(enabled: boolean) {
  return useQuery({ queryKey: hostKeys.sshKey, queryFn: () => api<SshKey>('/organizations/current/ssh-key'), enabled, staleTime: Infinity });
}

export function useRegisterHost() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: RegisterHost) => api<Host>('/hosts', { method: 'POST', body }),
    onSuccess: () => client.invalidateQueries({ queryKey: hostKeys.all }),
  });
}

export type HostAction = 'verify' | 'drain' | 'undrain' | 'remove';

/** Verify, drain and undrain answer the host; remove answers nothing. */
export function useHostAction() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, action }: { id: string; action: HostAction }) =>
      action === 'remove' ? api<undefined>(`/hosts/${id}`, { method: 'DELETE' }) : api<Host>(`/hosts/${id}/${action}`, { method: 'POST' }),
    // A refused host key is a 409 that still moved the host to unreachable.
    onSettled: () => client.invalidateQueries({ queryKey: hostKeys.all }),
  });
}

/** What a host's status allows (`inventiv_common::host`): a host in use is not removed, a removed one takes nothing. */
export function allowedHostActions(status: HostStatus): HostAction[] {
  switch (status) {
    case 'removed':
      return [];
    case 'draining':
      return ['verify', 'undrain', 'remove'];
    case 'in_use':
      return ['verify', 'drain'];
    default:
      return ['verify', 'drain', 'remove'];
  }
}

export const HOST_ACTION_LABEL: Record<HostAction, string> = { verify: 'Verify', drain: 'Drain', undrain: 'Undrain', remove: 'Remove' };

/** The question asked before an action (null: none). */
export function hostActionQuestion(action: HostAction, host: Host): string | null {
  switch (action) {
    case 'remove':
      return `Remove ${host.label} (${host.address}:${host.ssh_port})? It is kept with its history but cannot be used again; to use the machine again, register it anew.`;
    case 'drain':
      return `Drain ${host.label}? Nothing new is placed on it; what runs there stays.`;
    default:
      return null;
  }
}

/** "2 × NVIDIA L4 × 22.5 GiB", or "none". */
/** Each GPU of the host and the instance seated on it (null: free). */
export function gpuUse(h: Pick<Host, 'gpu_count' | 'seats'>): { index: number; instanceId: string | null; releasing: boolean }[] {
  return Array.from({ length: h.gpu_count }, (_, index) => {
    const seat = h.seats.find((s) => s.gpus.includes(index));
    return { index, instanceId: seat?.instance_id ?? null, releasing: seat?.releasing ?? false };
  });
}

/** "1 of 2 in use", or "none" for a host without GPUs. */
export function gpuUseText(h: Pick<Host, 'gpu_count' | 'seats'>): string {
  if (h.gpu_count === 0) return 'none';
  const used = gpuUse(h).filter((g) => g.instanceId !== null).length;
  return `${used} of ${h.gpu_count} in use`;
}

export function gpusText(h: Pick<Host, 'gpu_count' | 'gpu_model' | 'gpu_vram_mib'>): string {
  if (h.gpu_count === 0) return 'none';
  const vram = h.gpu_vram_mib === null || h.gpu_vram_mib === undefined ? '' : ` × ${Number((h.gpu_vram_mib / 1024).toFixed(1))} GiB`;
  return `${h.gpu_count} × ${h.gpu_model ?? 'unknown model'}${vram}`;
}
