// FinOps in the query cache: burn rate, cost and token series, cost
// recovery, share chargeback and billable monthly statements of the current
// organization, and usage disputes.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { CostPoint, CurrentCost, Dispute, MonthStatement, Recovery, Statement, UsagePoint } from '../api/types';

type Query = Record<string, string>;

/** The burn rate; `enabled` false for roles that may not read FinOps (the API would answer 403). */
export function useCurrentCost(enabled = true) {
  return useQuery({
    queryKey: ['finops', 'current'],
    queryFn: () => api<CurrentCost>('/finops/cost/current'),
    refetchInterval: 60_000,
    enabled,
  });
}

export function useCostSeries(query: Query) {
  return useQuery({ queryKey: ['finops', 'cost', query], queryFn: () => api<CostPoint[]>('/finops/cost/series', { query }) });
}

export function useUsageSeries(query: Query) {
  return useQuery({ queryKey: ['finops', 'usage', query], queryFn: () => api<UsagePoint[]>('/finops/usage/series', { query }) });
}

export function useCostRecovery(enabled = true) {
  return useQuery({ queryKey: ['finops', 'recovery'], queryFn: () => api<Recovery[]>('/finops/cost-recovery'), enabled });
}

export function useStatement(month: string) {
  return useQuery({
    queryKey: ['finops', 'statement', month],
    queryFn: () => api<Statement>('/finops/statements', { query: { month } }),
  });
}

/** The billable statement of a month: a snapshot once closed, live before. */
export function useMonthStatement(month: string) {
  return useQuery({
    queryKey: ['finops', 'month-statement', month],
    queryFn: () => api<MonthStatement>(`/finops/statements/${month}`),
  });
}

export function useCloseMonth(month: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (note: string) =>
      api<MonthStatement>(`/finops/statements/${month}/close`, { method: 'POST', body: note.trim() ? { note: note.trim() } : {} }),
    onSuccess: (closed) => client.setQueryData(['finops', 'month-statement', month], closed),
  });
}

export function useDisputes(query: Query) {
  return useQuery({ queryKey: ['finops', 'disputes', query], queryFn: () => api<Dispute[]>('/finops/disputes', { query }) });
}
