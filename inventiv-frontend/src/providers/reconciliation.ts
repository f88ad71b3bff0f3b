// The reconciliation report in words: what each verdict of
// `GET /providers/{provider}/reconciliation` means, and the counts shown
// above the table.
import type { ReconciliationReport } from '../api/types';

/** What reconciliation does with a resource, and why (inventiv_providers::reconcile). */
export const VERDICTS: Record<string, { action: 'delete' | 'keep' | 'ignore'; reason: string }> = {
  delete: { action: 'delete', reason: 'Orphan: tagged by us, no live instance, older than the grace window' },
  keep_young: { action: 'keep', reason: 'Orphan inside the grace window (its instance may still be starting)' },
  owned: { action: 'keep', reason: 'Belongs to a live instance' },
  attached: { action: 'keep', reason: 'Attached to a server: goes with it' },
  other_organization: { action: 'ignore', reason: "Tagged for another organization: never touched with this organization's credentials" },
  untagged: { action: 'ignore', reason: 'Not created by Inventiv: never touched' },
};

export function verdictOf(verdict: string): { action: 'delete' | 'keep' | 'ignore'; reason: string } {
  return VERDICTS[verdict] ?? { action: 'keep', reason: `Unknown verdict ${verdict}: kept` };
}

export interface Summary {
  delete: number;
  keep: number;
  ignore: number;
  /** Live instances whose server vanished plus recorded volumes gone at the provider. */
  missing: number;
}

export function summarize(report: ReconciliationReport): Summary {
  const summary: Summary = { delete: 0, keep: 0, ignore: 0, missing: report.vanished_instances.length + report.missing_volumes.length };
  for (const r of report.resources) summary[verdictOf(r.verdict).action] += 1;
  return summary;
}

/** `1800` → `30 min`, `5400` → `1 h 30 min`, `45` → `45 s`. */
export function graceText(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return [h ? `${h} h` : '', m ? `${m} min` : ''].filter(Boolean).join(' ') || '0 min';
}
