// Budgets and their alerts in the query cache.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { Budget, BudgetAlert, NewBudget, SetBudget } from '../api/types';

export const budgetKeys = { list: ['budgets'] as const, alerts: ['budget-alerts'] as const };

export function useBudgets() {
  return useQuery({ queryKey: budgetKeys.list, queryFn: () => api<Budget[]>('/organizations/current/budgets'), refetchInterval: 30_000 });
}

export function useBudgetAlerts() {
  return useQuery({ queryKey: budgetKeys.alerts, queryFn: () => api<BudgetAlert[]>('/organizations/current/budget-alerts?limit=100') });
}

function useInvalidate() {
  const client = useQueryClient();
  return () => Promise.all([client.invalidateQueries({ queryKey: budgetKeys.list }), client.invalidateQueries({ queryKey: budgetKeys.alerts })]);
}

export function useCreateBudget() {
  const invalidate = useInvalidate();
  return useMutation({
    mutationFn: (body: NewBudget) => api<Budget>('/organizations/current/budgets', { method: 'POST', body }),
    onSuccess: invalidate,
  });
}

export function useSetBudget() {
  const invalidate = useInvalidate();
  return useMutation({
    mutationFn: ({ id, body }: { id: string; body: SetBudget }) => api<Budget>(`/organizations/current/budgets/${id}`, { method: 'PUT', body }),
    onSuccess: invalidate,
  });
}

export function useDeleteBudget() {
  const invalidate = useInvalidate();
  return useMutation({
    mutationFn: (id: string) => api<void>(`/organizations/current/budgets/${id}`, { method: 'DELETE' }),
    onSuccess: invalidate,
  });
}
