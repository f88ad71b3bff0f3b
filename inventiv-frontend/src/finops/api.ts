// FinOps in the query cache: burn rate, cost and token series, cost
// recovery, monthly statements and usage disputes of the current organization.
import { useQuery } from '@tanstack/react-query';
import { api } from '../api/client';
import type { CostPoint, CurrentCost, Dispute, Recovery, Statement, UsagePoint } from '../api/types';

type Query = Record<string, string>;

export function useCurrentCost() {
  return useQuery({
    queryKey: ['finops', 'current'],
    queryFn: () => api<CurrentCost>('/finops/cost/current'),
    refetchInterval: 60_000,
  });
}

export function useCostSeries(query: Query) {
  return useQuery({ queryKey: ['finops', 'cost', query], queryFn: () => api<CostPoint[]>('/finops/cost/series', { query }) });
}

export function useUsageSeries(query: Query) {
  return useQuery({ queryKey: ['finops', 'usage', query], queryFn: () => api<UsagePoint[]>('/finops/usage/series', { query }) });
}

export function useCostRecovery() {
  return useQuery({ queryKey: ['finops', 'recovery'], queryFn: () => api<Recovery[]>('/finops/cost-recovery') });
}

export function useStatement(month: string) {
  return useQuery({
    queryKey: ['finops', 'statement', month],
    queryFn: () => api<Statement>('/finops/statements', { query: { month } }),
  });
}

export function useDisputes(query: Query) {
  return useQuery({ queryKey: ['finops', 'disputes', query], queryFn: () => api<Dispute[]>('/finops/disputes', { query }) });
}
