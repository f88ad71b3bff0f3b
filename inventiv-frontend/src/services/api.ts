// Services in the query cache: the list, one service with its replicas, its
// timeline, and the changes to it (create, policy, pause, resume, rollout,
// delete).
// The events stream's `service.updated` keeps them live (liveEvents.ts).
import { useMutation, useQuery, useQueryClient, type QueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { CreateService, Rollout, Service, ServiceDetail, ServiceEvent, UpdateService } from '../api/types';

export const serviceKeys = {
  list: ['services'] as const,
  one: (id: string) => ['service', id] as const,
  events: (id: string) => ['service', id, 'events'] as const,
};

export function useServices() {
  return useQuery({ queryKey: serviceKeys.list, queryFn: () => api<Service[]>('/services', { query: { limit: 200 } }) });
}

export function useService(id: string) {
  return useQuery({ queryKey: serviceKeys.one(id), queryFn: () => api<ServiceDetail>(`/services/${id}`) });
}

/** The newest 200 entries of the timeline, newest first. */
export function useServiceEvents(id: string) {
  return useQuery({ queryKey: serviceKeys.events(id), queryFn: () => api<ServiceEvent[]>(`/services/${id}/events`, { query: { limit: 200 } }) });
}

/** Puts a service returned by a change into the list and its own entry. */
export function storeService(client: QueryClient, service: ServiceDetail) {
  client.setQueryData<ServiceDetail>(serviceKeys.one(service.id), service);
  client.setQueryData<Service[]>(serviceKeys.list, (list) => {
    if (!list) return list;
    const found = list.some((s) => s.id === service.id);
    return found ? list.map((s) => (s.id === service.id ? service : s)) : [service, ...list];
  });
  void client.invalidateQueries({ queryKey: serviceKeys.events(service.id) });
}

export function useCreateService() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateService) => api<ServiceDetail>('/services', { method: 'POST', body }),
    onSuccess: (service) => storeService(client, service),
  });
}

export function useUpdateService(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: UpdateService) => api<ServiceDetail>(`/services/${id}`, { method: 'PATCH', body }),
    onSuccess: (service) => storeService(client, service),
  });
}

/** Replaces the service's replicas one at a time (a new revision). */
export function useRollout(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: Rollout) => api<ServiceDetail>(`/services/${id}/rollout`, { method: 'POST', body }),
    onSuccess: (service) => storeService(client, service),
  });
}

export type ServiceAction = 'pause' | 'resume' | 'delete';

export function useServiceAction(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (action: ServiceAction) =>
      action === 'delete' ? api<ServiceDetail>(`/services/${id}`, { method: 'DELETE' }) : api<ServiceDetail>(`/services/${id}/${action}`, { method: 'POST' }),
    onSuccess: (service) => storeService(client, service),
  });
}

/** What a service's state allows (a deleting or deleted service takes no change). */
export function allowedServiceActions(state: Service['state']): ServiceAction[] {
  switch (state) {
    case 'active':
      return ['pause', 'delete'];
    case 'paused':
      return ['resume', 'delete'];
    default:
      return [];
  }
}
