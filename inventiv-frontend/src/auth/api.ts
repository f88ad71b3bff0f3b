// Logging in and out, password reset: the session lives in HttpOnly cookies
// set by the API; the access token also kept in memory is for `/v1` only.
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import { clearAccessToken, setAccessToken } from '../api/session';
import type { TokenResponse } from '../api/types';
import { meKey } from './useMe';

export function useLogin() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: { email: string; password: string }) =>
      api<TokenResponse>('/auth/login', { method: 'POST', body }),
    onSuccess: async (tokens) => {
      setAccessToken(tokens.access_token, tokens.expires_in);
      client.clear();
      await client.invalidateQueries({ queryKey: meKey });
    },
  });
}

export function useLogout() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: () => api<void>('/auth/logout', { method: 'POST' }),
    onSettled: () => {
      clearAccessToken();
      client.clear();
    },
  });
}

export function useRequestReset() {
  return useMutation({
    mutationFn: (email: string) => api<{ status: string }>('/auth/password-reset/request', { method: 'POST', body: { email } }),
  });
}

export function useResetPassword() {
  return useMutation({
    mutationFn: (body: { token: string; new_password: string }) =>
      api<void>('/auth/password-reset/reset', { method: 'POST', body }),
  });
}
