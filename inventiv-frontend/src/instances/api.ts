// Instances in the query cache: the list (kept live by the events stream),
// one instance, its timeline, and the actions on it.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import { instanceStatusValues, type ActionLogEntry, type Deploy, type HistoryEntry, type Instance, type InstanceStatus, type InstanceType, type Model, type Provider, type Volume, type Zone } from '../api/types';

/** Every status but `archived`: what the events stream's snapshot holds. */
export const LIVE_STATUSES = instanceStatusValues.filter((s) => s !== 'archived');

export const instanceKeys = {
  list: ['instances'] as const,
  archived: ['instances-archived'] as const,
  one: (id: string) => ['instance', id] as const,
  actions: (id: string) => ['instance', id, 'actions'] as const,
  history: (id: string) => ['instance', id, 'history'] as const,
  heartbeat: (id: string) => ['instance', id, 'heartbeat'] as const,
  logs: (id: string, tail: number) => ['instance', id, 'logs', tail] as const,
  volumes: (id: string, status: string) => ['instance', id, 'volumes', status] as const,
};

export function useInstances() {
  return useQuery({
    queryKey: instanceKeys.list,
    queryFn: () => api<Instance[]>('/instances', { query: { status: LIVE_STATUSES.join(','), limit: 200 } }),
  });
}

export function useArchivedInstances(enabled: boolean) {
  return useQuery({
    queryKey: instanceKeys.archived,
    queryFn: () => api<Instance[]>('/instances', { query: { status: 'archived', limit: 200 } }),
    enabled,
  });
}

export function useInstance(id: string) {
  const client = useQueryClient();
  return useQuery({
    queryKey: instanceKeys.one(id),
    queryFn: () => api<Instance>(`/instances/${id}`),
    initialData: () => client.getQueryData<Instance[]>(instanceKeys.list)?.find((i) => i.id === id),
  });
}

export function useInstanceActions(id: string) {
  return useQuery({ queryKey: instanceKeys.actions(id), queryFn: () => api<ActionLogEntry[]>(`/instances/${id}/actions`) });
}

export function useInstanceHistory(id: string) {
  return useQuery({ queryKey: instanceKeys.history(id), queryFn: () => api<HistoryEntry[]>(`/instances/${id}/history`) });
}

/** The instance's volumes, read again when its status changes (recorded after creation, deleted at termination). */
export function useInstanceVolumes(id: string, status: string) {
  return useQuery({ queryKey: instanceKeys.volumes(id, status), queryFn: () => api<Volume[]>(`/instances/${id}/volumes`), placeholderData: (previous) => previous });
}

/** Puts an instance returned by an action into the list and its own entry. */
export function storeInstance(client: ReturnType<typeof useQueryClient>, instance: Instance) {
  client.setQueryData<Instance>(instanceKeys.one(instance.id), instance);
  client.setQueryData<Instance[]>(instanceKeys.list, (list) => {
    if (!list) return list;
    if (instance.status === 'archived') return list.filter((i) => i.id !== instance.id);
    const found = list.some((i) => i.id === instance.id);
    return found ? list.map((i) => (i.id === instance.id ? instance : i)) : [instance, ...list];
  });
}

export type InstanceAction = 'terminate' | 'reinstall' | 'archive';

export function useInstanceAction() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, action }: { id: string; action: InstanceAction }) => {
      switch (action) {
        case 'terminate':
          return api<Instance>(`/instances/${id}`, { method: 'DELETE' });
        case 'reinstall':
          return api<Instance>(`/instances/${id}/reinstall`, { method: 'POST' });
        case 'archive':
          return api<Instance>(`/instances/${id}/archive`, { method: 'PUT' });
      }
    },
    onSuccess: (instance) => {
      storeInstance(client, instance);
      void client.invalidateQueries({ queryKey: instanceKeys.archived });
    },
  });
}

/** Which actions the state machine allows from a status. */
export function allowedActions(status: InstanceStatus): InstanceAction[] {
  switch (status) {
    case 'worker_dead':
    case 'startup_failed':
      return ['reinstall', 'terminate'];
    case 'terminated':
      return ['archive'];
    case 'terminating':
    case 'archived':
      return [];
    default:
      return ['terminate'];
  }
}

export function useDeploy() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: Deploy) => api<Instance>('/deployments', { method: 'POST', body }),
    onSuccess: (instance) => storeInstance(client, instance),
  });
}

export function useProviders() {
  return useQuery({ queryKey: ['providers'], queryFn: () => api<Provider[]>('/providers') });
}

export function useZones(provider?: string) {
  return useQuery({
    queryKey: ['zones', provider ?? null],
    queryFn: () => api<Zone[]>('/zones', { query: { provider } }),
  });
}

export function useInstanceTypes(provider?: string, zone?: string, enabled = true) {
  return useQuery({
    queryKey: ['instance_types', provider ?? null, zone ?? null],
    queryFn: () => api<InstanceType[]>('/instance_types', { query: { provider, zone } }),
    enabled,
  });
}

export function useCompatibleModels(instanceTypeId?: string) {
  return useQuery({
    queryKey: ['instance_types', instanceTypeId, 'models'],
    queryFn: () => api<Model[]>(`/instance_types/${instanceTypeId}/models`),
    enabled: Boolean(instanceTypeId),
  });
}
