// System prompts: the organization's own (owners and admins set or remove
// it) and those that concern it (its keys', the catalog models'), read by
// every member. The proxy applies the most specific one to chat
// completions: a key's, else the organization's, else the model's.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { api } from '../api/client';
import type { SetSystemPrompt, SystemPrompt } from '../api/types';
import { Card, ErrorMessage, Loading, SelectField } from '../components/ui';

/** The API's bound on a prompt's length, in characters. */
export const SYSTEM_PROMPT_MAX = 4000;

export const systemPromptsKey = ['system-prompts'] as const;

export function useSystemPrompts() {
  return useQuery({ queryKey: systemPromptsKey, queryFn: () => api<SystemPrompt[]>('/organizations/current/system-prompts') });
}

/** Set (PUT) and clear (DELETE) the prompt at `path`. */
function usePrompt(path: string) {
  const client = useQueryClient();
  const done = () => client.invalidateQueries({ queryKey: systemPromptsKey });
  const set = useMutation({
    mutationFn: (body: SetSystemPrompt) => api<SystemPrompt>(path, { method: 'PUT', body }),
    onSuccess: done,
  });
  const clear = useMutation({
    mutationFn: () => api<void>(path, { method: 'DELETE' }),
    onSuccess: done,
  });
  return { set, clear };
}

const SCOPE_LABEL: Record<string, string> = { api_key: 'API key', organization: 'Organization', offering: 'Shared offering (for its consumers)', model: 'Model' };
const MODE_LABEL: Record<SystemPrompt['mode'], string> = {
  if_absent: 'when the request has no system message',
  always: 'before the request’s own messages',
};

export function SystemPromptCard({ editable }: { editable: boolean }) {
  const prompts = useSystemPrompts();
  return (
    <Card title="System prompts">
      <p className="muted">
        Applied to chat completions by the proxy: an API key’s, else the organization’s, else (for a shared model) its provider’s, else the model’s. Counted in prompt tokens like any other text.
      </p>
      {prompts.isPending ? (
        <Loading />
      ) : prompts.isError ? (
        <ErrorMessage error={prompts.error} />
      ) : (
        <>
          <PromptForm
            key={orgPrompt(prompts.data)?.version ?? 0}
            path="/organizations/current/system-prompt"
            formLabel="Set the organization’s system prompt"
            fieldLabel="Organization system prompt"
            setLabel="Set the prompt"
            clearLabel="Clear the prompt"
            current={orgPrompt(prompts.data)}
            editable={editable}
          />
          <ul className="plain-list" aria-label="System prompts in force">
            {prompts.data.map((p) => (
              <li key={`${p.scope}/${p.target_id}`}>
                <strong>{SCOPE_LABEL[p.scope] ?? p.scope}</strong> (version {p.version}, {MODE_LABEL[p.mode]}): {p.content}
              </li>
            ))}
          </ul>
        </>
      )}
    </Card>
  );
}

function orgPrompt(list: SystemPrompt[]): SystemPrompt | undefined {
  return list.find((p) => p.scope === 'organization');
}

/** The prompt of one target (`scope` and `targetId`) among those listed, if set. */
export function promptOf(list: SystemPrompt[] | undefined, scope: string, targetId: string): SystemPrompt | undefined {
  return list?.find((p) => p.scope === scope && p.target_id === targetId);
}

type PromptFormProps = {
  /** Where it is set (PUT) and cleared (DELETE). */
  path: string;
  formLabel: string;
  fieldLabel: string;
  setLabel: string;
  clearLabel: string;
  current: SystemPrompt | undefined;
  editable: boolean;
};

/** Sets or clears one system prompt (its text and how it applies). */
export function PromptForm({ path, formLabel, fieldLabel, setLabel, clearLabel, current, editable }: PromptFormProps) {
  const { set, clear } = usePrompt(path);
  const [content, setContent] = useState(current?.content ?? '');
  const [mode, setMode] = useState<SystemPrompt['mode']>(current?.mode ?? 'if_absent');
  const textId = useId();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    set.mutate({ content: content.trim(), mode });
  };
  return (
    <form className="form" aria-label={formLabel} onSubmit={submit}>
      <div className="field">
        <label htmlFor={textId}>{fieldLabel}</label>
        <textarea id={textId} rows={3} maxLength={SYSTEM_PROMPT_MAX} value={content} disabled={!editable} onChange={(e) => setContent(e.target.value)} />
      </div>
      <SelectField label="Applied" value={mode} disabled={!editable} onChange={(e) => setMode(e.target.value as SystemPrompt['mode'])}>
        <option value="if_absent">{MODE_LABEL.if_absent}</option>
        <option value="always">{MODE_LABEL.always}</option>
      </SelectField>
      <ErrorMessage error={set.error ?? clear.error} />
      {editable ? (
        <div className="form-actions">
          {current ? (
            <button type="button" className="button" disabled={clear.isPending} onClick={() => clear.mutate()}>
              {clearLabel}
            </button>
          ) : null}
          <button type="submit" className="button button-primary" disabled={set.isPending || content.trim() === ''}>
            {setLabel}
          </button>
        </div>
      ) : null}
    </form>
  );
}
