// API keys in the query cache.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { ApiKey, CreateKey, CreatedKey, UpdateKey } from '../api/types';

export const keyKeys = { list: ['api-keys'] as const };

export function useApiKeys() {
  return useQuery({ queryKey: keyKeys.list, queryFn: () => api<ApiKey[]>('/api-keys') });
}

export function useCreateKey() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateKey) => api<CreatedKey>('/api-keys', { method: 'POST', body }),
    onSuccess: () => client.invalidateQueries({ queryKey: keyKeys.list }),
  });
}

export function useUpdateKey() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, body }: { id: string; body: UpdateKey }) => api<ApiKey>(`/api-keys/${id}`, { method: 'PATCH', body }),
    onSuccess: () => client.invalidateQueries({ queryKey: keyKeys.list }),
  });
}

export function useRevokeKey() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api<void>(`/api-keys/${id}`, { method: 'DELETE' }),
    onSuccess: () => client.invalidateQueries({ queryKey: keyKeys.list }),
  });
}
