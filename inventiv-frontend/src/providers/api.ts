// The organization's provider settings in the query cache: credentials
// status (never the credentials), their verification and removal, the
// Hugging Face token's status (never the token), worker settings, the
// reconciliation dry run and the catalog sync.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { CredentialsStatus, HuggingFaceToken, HuggingFaceTokenStatus, ReconciliationReport, ScalewayCredentials, SyncReport, WorkerSettings } from '../api/types';

const base = (provider: string) => `/organizations/current/providers/${provider}`;

export const providerKeys = {
  credentials: (provider: string) => ['provider', provider, 'credentials'] as const,
  workerSettings: (provider: string) => ['provider', provider, 'worker-settings'] as const,
  reconciliation: (provider: string) => ['provider', provider, 'reconciliation'] as const,
  huggingFaceToken: ['huggingface-token'] as const,
};

export function useCredentials(provider: string) {
  return useQuery({ queryKey: providerKeys.credentials(provider), queryFn: () => api<CredentialsStatus>(`${base(provider)}/credentials`) });
}

/** Save, verify and remove: each answer (the new status) replaces the cached one. */
export function useCredentialsActions(provider: string) {
  const client = useQueryClient();
  const key = providerKeys.credentials(provider);
  const store = (status: CredentialsStatus) => {
    client.setQueryData(key, status);
    void client.invalidateQueries({ queryKey: providerKeys.reconciliation(provider) });
  };
  return {
    save: useMutation({
      mutationFn: (body: ScalewayCredentials) => api<CredentialsStatus>(`${base(provider)}/credentials`, { method: 'PUT', body }),
      onSuccess: store,
    }),
    verify: useMutation({
      mutationFn: () => api<CredentialsStatus>(`${base(provider)}/credentials/verify`, { method: 'POST' }),
      onSuccess: store,
    }),
    remove: useMutation({
      mutationFn: () => api<void>(`${base(provider)}/credentials`, { method: 'DELETE' }),
      onSuccess: () => store({ provider, configured: false }),
    }),
  };
}

const HF_TOKEN = '/organizations/current/huggingface-token';

export function useHuggingFaceToken() {
  return useQuery({ queryKey: providerKeys.huggingFaceToken, queryFn: () => api<HuggingFaceTokenStatus>(HF_TOKEN) });
}

/** Save and remove: each answer (the new status) replaces the cached one. */
export function useHuggingFaceTokenActions() {
  const client = useQueryClient();
  const store = (status: HuggingFaceTokenStatus) => client.setQueryData(providerKeys.huggingFaceToken, status);
  return {
    save: useMutation({
      mutationFn: (body: HuggingFaceToken) => api<HuggingFaceTokenStatus>(HF_TOKEN, { method: 'PUT', body }),
      onSuccess: store,
    }),
    remove: useMutation({
      mutationFn: () => api<void>(HF_TOKEN, { method: 'DELETE' }),
      onSuccess: () => store({ configured: false }),
    }),
  };
}

export function useWorkerSettings(provider: string) {
  return useQuery({ queryKey: providerKeys.workerSettings(provider), queryFn: () => api<WorkerSettings>(`${base(provider)}/worker-settings`) });
}

export function useSaveWorkerSettings(provider: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: WorkerSettings) => api<WorkerSettings>(`${base(provider)}/worker-settings`, { method: 'PUT', body }),
    onSuccess: (saved) => client.setQueryData(providerKeys.workerSettings(provider), saved),
  });
}

/** The dry run; 409 PROVIDER_NOT_CONFIGURED when the credentials are not set (not retried). */
export function useReconciliation(provider: string) {
  return useQuery({
    queryKey: providerKeys.reconciliation(provider),
    queryFn: () => api<ReconciliationReport>(`/providers/${provider}/reconciliation`),
    retry: false,
  });
}

export function useCatalogSync(provider: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: () => api<SyncReport>(`/providers/${provider}/catalog-sync`, { method: 'POST' }),
    onSuccess: () => client.invalidateQueries({ queryKey: ['instance_types'] }),
  });
}
