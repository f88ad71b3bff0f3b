// Budgets of the current organization: set and edit them (owners and
// admins), see each limit's consumption this month with what requests in
// flight hold and the forecast to the month's end, and the alerts their
// thresholds raised.
import { useState, type FormEvent } from 'react';
import type { Budget, NewBudget } from '../api/types';
import { can } from '../auth/permissions';
import { useMe } from '../auth/useMe';
import { Dialog } from '../components/Dialog';
import { Card, DateText, Empty, ErrorMessage, Field, Loading, PageHeader, SelectField, usePageTitle } from '../components/ui';
import { useApiKeys } from '../keys/api';
import { useAvailableOfferings } from '../offerings/api';
import { useBudgetAlerts, useBudgets, useCreateBudget, useDeleteBudget, useSetBudget } from './api';
import { meters, parseAmount, parseThresholds, type Meter } from './consumption';

function MeterRow({ m }: { m: Meter }) {
  const width = Math.min(100, Number.isFinite(m.percent) ? m.percent : 100);
  const forecast = Math.min(100, Number.isFinite(m.forecastPercent) ? m.forecastPercent : 100);
  return (
    <div className={`budget-meter budget-${m.tone}`}>
      <div className="budget-meter-head">
        <strong>{m.label}</strong>
        <span>
          {m.shown.used} of {m.shown.limit}
          {m.reserved > 0 ? ` (+${m.shown.reserved} in flight)` : ''} · forecast {m.shown.forecast}
        </span>
      </div>
      <div
        className="progress"
        role="progressbar"
        aria-label={`${m.label} used`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(width)}
      >
        <div className="progress-fill" style={{ width: `${width}%` }} />
        <div className="budget-forecast-mark" style={{ left: `${forecast}%` }} title={`forecast ${Math.round(m.forecastPercent)}%`} />
        <span className="progress-text">{Number.isFinite(m.percent) ? `${Math.round(m.percent)}%` : 'over'}</span>
      </div>
    </div>
  );
}

function target(b: Budget, keyNames: Map<string, string>): string {
  if (b.scope === 'api_key') return `API key ${keyNames.get(b.api_key_id ?? '') ?? b.api_key_id}`;
  if (b.scope === 'share') return `Share ${b.share_id}`;
  return 'Organization';
}

export function BudgetsPage() {
  usePageTitle('Budgets');
  const { data: me } = useMe();
  const manages = can(me?.current_organization.role, 'ManageBudgets');
  const budgets = useBudgets();
  const alerts = useBudgetAlerts();
  const keys = useApiKeys();
  const remove = useDeleteBudget();
  const [editing, setEditing] = useState<Budget | 'new' | null>(null);
  const keyNames = new Map((keys.data ?? []).map((k) => [k.id, k.name]));

  return (
    <>
      <PageHeader title="Budgets">
        {manages ? (
          <button type="button" className="button" onClick={() => setEditing('new')}>
            New budget
          </button>
        ) : null}
      </PageHeader>
      <p className="muted">
        EUR limits count what requests through shared models are charged (your own models cost nothing per request: their GPUs are
        billed by the hour); token limits count prompt and completion tokens of every model; GPU hours count your instances' running
        time. A hard limit refuses what would exceed it.
      </p>
      {budgets.isLoading ? <Loading /> : null}
      <ErrorMessage error={budgets.error ?? remove.error} />
      {budgets.data?.length === 0 ? <Empty>No budget yet.</Empty> : null}
      {budgets.data?.map((b) => (
        <Card
          key={b.id}
          title={`${target(b, keyNames)} · ${b.consumption.month}`}
          actions={
            manages ? (
              <span className="row-actions">
                <button type="button" className="button button-small" onClick={() => setEditing(b)}>
                  Edit
                </button>
                <button
                  type="button"
                  className="button button-small button-danger"
                  onClick={() => {
                    if (window.confirm('Remove this budget and its alerts?')) remove.mutate(b.id);
                  }}
                >
                  Remove
                </button>
              </span>
            ) : null
          }
        >
          {meters(b).map((m) => (
            <MeterRow key={m.metric} m={m} />
          ))}
          <p className="muted">
            Alerts at {b.thresholds.join(', ')} % · {b.hard_limit ? 'hard limit' : 'alerts only'}
            {b.stop_running ? ' · stops running instances at the GPU-hour limit' : ''}
          </p>
        </Card>
      ))}
      <Card title="Alerts">
        {alerts.data?.length === 0 ? <Empty>No threshold crossed.</Empty> : null}
        <ErrorMessage error={alerts.error} />
        <ul className="plain-list">
          {alerts.data?.map((a) => {
            const b = budgets.data?.find((x) => x.id === a.budget_id);
            return (
              <li key={a.id}>
                <DateText value={a.created_at} /> — {b ? target(b, keyNames) : 'budget'}: {a.threshold}% of {a.monthly_limit}{' '}
                {a.metric === 'eur' ? 'EUR' : a.metric === 'tokens' ? 'tokens' : 'GPU hours'} ({a.consumed} used)
                {a.mailed_at ? ' · mailed to the owners' : ''}
              </li>
            );
          })}
        </ul>
      </Card>
      {editing ? <BudgetDialog budget={editing === 'new' ? null : editing} onClose={() => setEditing(null)} /> : null}
    </>
  );
}

function BudgetDialog({ budget, onClose }: { budget: Budget | null; onClose: () => void }) {
  const create = useCreateBudget();
  const update = useSetBudget();
  const keys = useApiKeys();
  const shares = useAvailableOfferings({});
  const [scope, setScope] = useState<string>(budget?.scope ?? 'organization');
  const [targetId, setTargetId] = useState('');
  const [eur, setEur] = useState(budget?.monthly_eur ?? '');
  const [tokens, setTokens] = useState(budget?.monthly_tokens?.toString() ?? '');
  const [gpu, setGpu] = useState(budget?.monthly_gpu_hours ?? '');
  const [thresholds, setThresholds] = useState((budget?.thresholds ?? [50, 80, 100]).join(', '));
  const [hard, setHard] = useState(budget?.hard_limit ?? true);
  const [stop, setStop] = useState(budget?.stop_running ?? false);
  const [problem, setProblem] = useState<string | null>(null);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const monthly_eur = parseAmount(eur, 4);
    const monthly_tokens = parseAmount(tokens, 0);
    const monthly_gpu_hours = scope === 'organization' ? parseAmount(gpu, 2) : null;
    const levels = parseThresholds(thresholds);
    if (monthly_eur === undefined || monthly_tokens === undefined || monthly_gpu_hours === undefined || levels === null) {
      setProblem('Amounts are non-negative numbers (EUR: 4 decimals, GPU hours: 2); thresholds are up to 10 percentages from 1 to 100.');
      return;
    }
    const limits = {
      monthly_eur,
      monthly_tokens: monthly_tokens === null ? null : Number(monthly_tokens),
      monthly_gpu_hours,
      thresholds: levels,
      hard_limit: hard,
      stop_running: scope === 'organization' && stop,
    };
    if (budget) {
      update.mutate({ id: budget.id, body: limits }, { onSuccess: onClose });
      return;
    }
    const body: NewBudget = {
      scope,
      ...limits,
      api_key_id: scope === 'api_key' ? targetId : null,
      share_id: scope === 'share' ? targetId : null,
    };
    create.mutate(body, { onSuccess: onClose });
  };

  const accepted = (shares.data ?? []).filter((s) => s.accepted && s.share_id);
  return (
    <Dialog title={budget ? 'Edit budget' : 'New budget'} open onClose={onClose}>
      <form onSubmit={submit} className="form">
        {budget ? null : (
          <>
            <SelectField label="Scope" value={scope} onChange={(e) => { setScope(e.target.value); setTargetId(''); }}>
              <option value="organization">The whole organization</option>
              <option value="api_key">One API key</option>
              <option value="share">One shared model</option>
            </SelectField>
            {scope === 'api_key' ? (
              <SelectField label="API key" value={targetId} onChange={(e) => setTargetId(e.target.value)} required>
                <option value="">Choose…</option>
                {(keys.data ?? []).filter((k) => k.status !== 'revoked').map((k) => (
                  <option key={k.id} value={k.id}>{k.name}</option>
                ))}
              </SelectField>
            ) : null}
            {scope === 'share' ? (
              <SelectField label="Shared model" value={targetId} onChange={(e) => setTargetId(e.target.value)} required>
                <option value="">Choose…</option>
                {accepted.map((s) => (
                  <option key={s.share_id} value={s.share_id ?? ''}>{s.address}</option>
                ))}
              </SelectField>
            ) : null}
          </>
        )}
        <Field label="EUR per month" value={eur} onChange={(e) => setEur(e.target.value)} inputMode="decimal" hint="Empty: no EUR limit" />
        <Field label="Tokens per month" value={tokens} onChange={(e) => setTokens(e.target.value)} inputMode="numeric" hint="Empty: no token limit" />
        {scope === 'organization' ? (
          <Field label="GPU hours per month" value={gpu} onChange={(e) => setGpu(e.target.value)} inputMode="decimal" hint="Empty: no GPU-hour limit" />
        ) : null}
        <Field label="Alert thresholds (%)" value={thresholds} onChange={(e) => setThresholds(e.target.value)} hint="Mailed to the owners once per month each" />
        <label className="checkbox">
          <input type="checkbox" checked={hard} onChange={(e) => setHard(e.target.checked)} /> Hard limit: refuse what would exceed it
        </label>
        {scope === 'organization' ? (
          <label className="checkbox">
            <input type="checkbox" checked={stop} onChange={(e) => setStop(e.target.checked)} /> Stop running instances at the GPU-hour limit
          </label>
        ) : null}
        {problem ? <p className="error">{problem}</p> : null}
        <ErrorMessage error={create.error ?? update.error} />
        <div className="form-actions">
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button-primary" disabled={create.isPending || update.isPending}>
            Save
          </button>
        </div>
      </form>
    </Dialog>
  );
}
