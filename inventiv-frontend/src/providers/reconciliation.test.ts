import { describe, expect, it } from 'vitest';
import rust from '../../../inventiv-providers/src/reconcile.rs?raw';
import type { ReconciliationReport } from '../api/types';
import { VERDICTS, graceText, summarize, verdictOf } from './reconciliation';

const resource = (verdict: string, n: number) => ({
  kind: n % 2 ? 'server' : 'volume',
  provider_id: `r-${n}`,
  zone: 'fr-par-2',
  created_at: '2026-11-23T10:00:00Z',
  verdict,
});

describe('reconciliation report', () => {
  it('knows every verdict of inventiv_providers::reconcile', () => {
    const body = rust.slice(rust.indexOf('pub enum Verdict'), rust.indexOf('}', rust.indexOf('pub enum Verdict')));
    const variants = [...body.matchAll(/^\s+([A-Z]\w+),/gm)].map((m) => m[1]!.replace(/[A-Z]/g, (c, i) => (i ? '_' : '') + c.toLowerCase()));
    expect(variants.length).toBe(6);
    expect(Object.keys(VERDICTS).sort()).toEqual(variants.sort());
  });
  it('counts what would be deleted, kept, never touched and what is missing', () => {
    const report: ReconciliationReport = {
      provider: 'scaleway',
      generated_at: '2026-11-23T12:00:00Z',
      grace_seconds: 1800,
      resources: ['delete', 'delete', 'keep_young', 'owned', 'attached', 'untagged', 'other_organization'].map(resource),
      vanished_instances: ['00000000-0000-4000-8000-000000000001'],
      missing_volumes: ['v-1', 'v-2'],
    };
    expect(summarize(report)).toEqual({ delete: 2, keep: 3, ignore: 2, missing: 3 });
  });
  it('keeps what it does not know (never claims a deletion)', () => {
    expect(verdictOf('something_new').action).toBe('keep');
    expect(verdictOf('untagged').action).toBe('ignore');
  });
  it('writes the grace window for people', () => {
    expect(graceText(1800)).toBe('30 min');
    expect(graceText(5400)).toBe('1 h 30 min');
    expect(graceText(7200)).toBe('2 h');
    expect(graceText(45)).toBe('45 s');
  });
});
