// Small shared pieces of UI: page headers, labelled fields, error and empty
// states, status badges, dates and amounts (written by format.ts).
import { useEffect, useId, type InputHTMLAttributes, type ReactNode, type SelectHTMLAttributes } from 'react';
import { errorMessage } from '../api/client';
import { formatDate, formatEur, formatExactEur, formatRelative } from './format';
import { statusTones, type StatusKind, type Tone } from './statusTones';

export function usePageTitle(title: string) {
  useEffect(() => {
    document.title = `${title} · Inventiv Agents`;
  }, [title]);
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  usePageTitle(title);
  return (
    <div className="page-header">
      <h1>{title}</h1>
      {children ? <div className="page-actions">{children}</div> : null}
    </div>
  );
}

export function Card({ title, children, actions }: { title?: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="card" aria-label={title}>
      {title || actions ? (
        <div className="card-header">
          {title ? <h2>{title}</h2> : <span />}
          {actions}
        </div>
      ) : null}
      {children}
    </section>
  );
}

type FieldProps = InputHTMLAttributes<HTMLInputElement> & { label: string; hint?: ReactNode };

export function Field({ label, hint, id, ...input }: FieldProps) {
  const generated = useId();
  const inputId = id ?? generated;
  const hintId = hint ? `${inputId}-hint` : undefined;
  return (
    <div className="field">
      <label htmlFor={inputId}>{label}</label>
      <input id={inputId} aria-describedby={hintId} {...input} />
      {hint ? (
        <small id={hintId} className="hint">
          {hint}
        </small>
      ) : null}
    </div>
  );
}

type SelectProps = SelectHTMLAttributes<HTMLSelectElement> & { label: string; children: ReactNode; hint?: ReactNode };

export function SelectField({ label, id, children, hint, ...select }: SelectProps) {
  const generated = useId();
  const selectId = id ?? generated;
  const hintId = hint ? `${selectId}-hint` : undefined;
  return (
    <div className="field">
      <label htmlFor={selectId}>{label}</label>
      <select id={selectId} aria-describedby={hintId} {...select}>
        {children}
      </select>
      {hint ? (
        <small id={hintId} className="hint">
          {hint}
        </small>
      ) : null}
    </div>
  );
}

export function ErrorMessage({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {errorMessage(error)}
    </p>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="muted" role="status">
      {label}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

export function Badge({ tone, children }: { tone: Tone; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

/** A status the API answers with, in its tone (`statusTones.ts`). */
export function StatusBadge<K extends StatusKind>({ kind, status }: { kind: K; status: keyof (typeof statusTones)[K] & string }) {
  // A status this build does not know (an API newer than the dashboard) still shows, toneless.
  const tone = (statusTones[kind] as Record<string, Tone | undefined>)[status] ?? 'off';
  return <Badge tone={tone}>{status.replace(/_/g, ' ')}</Badge>;
}

export function ProgressBar({ value, label }: { value: number; label: string }) {
  const v = Math.max(0, Math.min(100, Math.round(value)));
  return (
    <div className="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={v}>
      <div className="progress-fill" style={{ width: `${v}%` }} />
      <span className="progress-text">{v}%</span>
    </div>
  );
}

/** A moment as "5 minutes ago", the absolute time with its time zone on hover. */
export function DateText({ value }: { value: string | null | undefined }) {
  if (!value) return <span className="muted">—</span>;
  const absolute = formatDate(value);
  return (
    <time dateTime={value} title={absolute}>
      {formatRelative(value)}
    </time>
  );
}

/** An amount rounded for reading (`formatEur`), every digit of it on hover. */
export function Money({ value, per }: { value: string | null | undefined; per?: string }) {
  if (value === null || value === undefined) return <span className="muted">—</span>;
  return (
    <span className={value.trim().startsWith('-') ? 'num negative' : 'num'} title={formatExactEur(value) + (per ? `/${per}` : '')}>
      {formatEur(value, per)}
    </span>
  );
}
