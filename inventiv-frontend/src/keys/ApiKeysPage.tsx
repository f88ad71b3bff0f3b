// API keys: create one (its secret shown once, with a copy button), change
// its limits, priority band and activations, revoke it.
import { useMemo, useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { api } from '../api/client';
import { keyPriorityValues, type ApiKey, type CreatedKey, type KeyPriority, type Model } from '../api/types';
import { can } from '../auth/permissions';
import { useMe } from '../auth/useMe';
import { CopyButton } from '../components/CopyButton';
import { DataTable } from '../components/DataTable';
import { Dialog } from '../components/Dialog';
import { DateText, ErrorMessage, Field, Loading, PageHeader, SelectField, StatusBadge } from '../components/ui';
import { useApiKeys, useCreateKey, useRevokeKey, useUpdateKey } from './api';
import { limitChange, parseLimit } from './limits';
import { PromptForm, promptOf, useSystemPrompts } from '../organizations/SystemPromptCard';

/** What the keys' search box looks in. */
const keyText = (k: ApiKey) => [k.name, k.prefix, k.last_four, k.status, k.created_by_email, ...(k.models ?? [])].join(' ');

export function ApiKeysPage() {
  const { data: me } = useMe();
  const role = me?.current_organization.role;
  const keys = useApiKeys();
  const revoke = useRevokeKey();
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const [editing, setEditing] = useState<ApiKey | null>(null);

  const columns = useMemo<ColumnDef<ApiKey>[]>(
    () => [
      { id: 'name', accessorKey: 'name', header: 'Name', size: 180 },
      { id: 'key', accessorFn: (k) => k.prefix, header: 'Key', size: 220, cell: ({ row }) => <code>{`${row.original.prefix}_…${row.original.last_four}`}</code> },
      { id: 'status', accessorKey: 'status', header: 'Status', size: 110, cell: ({ row }) => <StatusBadge kind="key" status={row.original.status} /> },
      { id: 'created_by_email', accessorKey: 'created_by_email', header: 'Owner', size: 200 },
      {
        id: 'limits',
        accessorFn: (k) => k.rpm_limit ?? 0,
        header: 'Limits',
        size: 160,
        cell: ({ row }) => {
          const k = row.original;
          const parts = [k.rpm_limit ? `${k.rpm_limit} req/min` : null, k.tpm_limit ? `${k.tpm_limit} tok/min` : null].filter(Boolean);
          return parts.length ? parts.join(', ') : <span className="muted">none</span>;
        },
      },
      { id: 'priority', accessorKey: 'priority', header: 'Priority', size: 110 },
      { id: 'models', accessorFn: (k) => (k.models ?? []).join(', '), header: 'Models', size: 200, cell: ({ getValue }) => getValue<string>() || <span className="muted">all</span> },
      { id: 'last_used_at', accessorKey: 'last_used_at', header: 'Last used', size: 190, cell: ({ getValue }) => <DateText value={getValue<string | null>()} /> },
      { id: 'expires_at', accessorKey: 'expires_at', header: 'Expires', size: 190, cell: ({ getValue }) => <DateText value={getValue<string | null>()} /> },
      { id: 'created_at', accessorKey: 'created_at', header: 'Created', size: 190, cell: ({ getValue }) => <DateText value={getValue<string>()} /> },
      {
        id: 'actions',
        header: 'Actions',
        size: 170,
        enableSorting: false,
        cell: ({ row }) => {
          const k = row.original;
          if (k.status === 'revoked') return null;
          // Managers see every key to approve its spending, but change
          // nothing else on keys they did not create.
          const manages = k.created_by === me?.user.id || can(role, 'ManageAllApiKeys');
          return (
            <span className="row-actions">
              <button type="button" className="button button-small" aria-label={`Edit ${k.name}`} onClick={() => setEditing(k)}>
                Edit
              </button>
              {manages ? (
                <button
                  type="button"
                  className="button button-small button-danger"
                  aria-label={`Revoke ${k.name}`}
                  onClick={() => {
                    if (window.confirm(`Revoke the key ${k.name}? It stops working at once.`)) revoke.mutate(k.id);
                  }}
                >
                  Revoke
                </button>
              ) : null}
            </span>
          );
        },
      },
    ],
    [revoke, me, role],
  );

  return (
    <>
      <PageHeader title="API keys">
        <button type="button" className="button button-primary" onClick={() => setCreating(true)}>
          Create a key
        </button>
      </PageHeader>
      <p className="muted">
        Keys call the OpenAI-compatible endpoint <code>{window.location.origin}/v1</code>.{' '}
        {can(role, 'ManageAllApiKeys') || can(role, 'ActivateEconomic')
          ? 'You see every key of the organization.'
          : 'You see your own keys. Lifting a limit sends the key back for economic approval.'}
      </p>
      <ErrorMessage error={revoke.error} />
      {created ? <NewKey created={created} onDone={() => setCreated(null)} /> : null}
      {keys.isPending ? (
        <Loading />
      ) : keys.isError ? (
        <ErrorMessage error={keys.error} />
      ) : (
        <DataTable
          id="api-keys"
          label="API keys"
          columns={columns}
          data={keys.data}
          getRowId={(k) => k.id}
          searchText={keyText}
          pageSize={25}
          defaults={{ sorting: [{ id: 'created_at', desc: true }], columnVisibility: { created_at: false } }}
          empty="No key yet."
        />
      )}
      <Dialog title="Create a key" open={creating} onClose={() => setCreating(false)}>
        <CreateKeyForm
          onClose={() => setCreating(false)}
          onCreated={(k) => {
            setCreating(false);
            setCreated(k);
          }}
        />
      </Dialog>
      <Dialog title={editing ? `Edit ${editing.name}` : 'Edit'} open={editing !== null} onClose={() => setEditing(null)}>
        {editing ? (
          <>
            <EditKeyForm apiKey={editing} onClose={() => setEditing(null)} />
            <KeyPrompt apiKey={editing} />
          </>
        ) : null}
      </Dialog>
    </>
  );
}

function NewKey({ created, onDone }: { created: CreatedKey; onDone: () => void }) {
  return (
    <section className="card new-key" aria-label="Your new key" role="region">
      <h2>Your new key “{created.api_key.name}”</h2>
      <p>Copy it now: it is shown this once and cannot be read again.</p>
      <div className="secret-row">
        <input className="secret" readOnly value={created.key} aria-label="New API key" onFocus={(e) => e.target.select()} />
        <CopyButton text={created.key} />
      </div>
      <button type="button" className="button" onClick={onDone}>
        I stored it
      </button>
    </section>
  );
}

function useModels() {
  return useQuery({ queryKey: ['models'], queryFn: () => api<Model[]>('/models') });
}

function ModelChoice({ value, onChange }: { value: string[]; onChange: (v: string[]) => void }) {
  const models = useModels();
  return (
    <fieldset className="fieldset">
      <legend>Models (none checked: every model of the organization)</legend>
      {models.data?.map((m) => (
        <label key={m.id} className="checkbox">
          <input
            type="checkbox"
            checked={value.includes(m.hf_id)}
            onChange={(e) => onChange(e.target.checked ? [...value, m.hf_id] : value.filter((v) => v !== m.hf_id))}
          />{' '}
          {m.display_name} <span className="muted">({m.hf_id})</span>
        </label>
      ))}
    </fieldset>
  );
}

/** The key's band when a deployment is saturated. */
function PriorityChoice({ value, onChange }: { value: KeyPriority; onChange: (v: KeyPriority) => void }) {
  return (
    <SelectField
      label="Priority"
      value={value}
      onChange={(e) => onChange(e.target.value as KeyPriority)}
      hint="On a saturated model, interactive requests go first; batch ones wait a little or are refused (429, retry later)."
    >
      {keyPriorityValues.map((p) => (
        <option key={p} value={p}>
          {p}
        </option>
      ))}
    </SelectField>
  );
}

function CreateKeyForm({ onClose, onCreated }: { onClose: () => void; onCreated: (k: CreatedKey) => void }) {
  const create = useCreateKey();
  const [name, setName] = useState('');
  const [rpm, setRpm] = useState('');
  const [tpm, setTpm] = useState('');
  const [expires, setExpires] = useState('');
  const [models, setModels] = useState<string[]>([]);
  const [priority, setPriority] = useState<KeyPriority>('interactive');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      {
        name: name.trim(),
        priority,
        rpm_limit: parseLimit(rpm),
        tpm_limit: parseLimit(tpm),
        expires_at: expires ? new Date(expires).toISOString() : null,
        models: models.length ? models : null,
      },
      { onSuccess: onCreated },
    );
  };
  return (
    <form className="form" onSubmit={submit} aria-label="Create a key">
      <Field label="Name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} autoFocus />
      <div className="form-row">
        <Field label="Requests per minute (optional)" type="number" min={1} max={100000000} value={rpm} onChange={(e) => setRpm(e.target.value)} />
        <Field label="Tokens per minute (optional)" type="number" min={1} max={100000000} value={tpm} onChange={(e) => setTpm(e.target.value)} />
      </div>
      <Field label="Expires (optional)" type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />
      <PriorityChoice value={priority} onChange={setPriority} />
      <ModelChoice value={models} onChange={setModels} />
      <ErrorMessage error={create.error} />
      <div className="form-actions">
        <button type="button" className="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" className="button button-primary" disabled={create.isPending}>
          Create
        </button>
      </div>
    </form>
  );
}

/** The key's own system prompt: it wins over the organization's and the model's. */
function KeyPrompt({ apiKey }: { apiKey: ApiKey }) {
  const prompts = useSystemPrompts();
  if (prompts.isPending) return <Loading />;
  if (prompts.isError) return <ErrorMessage error={prompts.error} />;
  const current = promptOf(prompts.data, 'api_key', apiKey.id);
  return (
    <PromptForm
      key={current?.version ?? 0}
      path={`/api-keys/${apiKey.id}/system-prompt`}
      formLabel="The key’s system prompt"
      fieldLabel="System prompt of this key (wins over the organization’s)"
      setLabel="Set the key’s prompt"
      clearLabel="Clear the key’s prompt"
      current={current}
      editable={apiKey.revoked_at === null || apiKey.revoked_at === undefined}
    />
  );
}

function EditKeyForm({ apiKey, onClose }: { apiKey: ApiKey; onClose: () => void }) {
  const update = useUpdateKey();
  const { data: me } = useMe();
  const role = me?.current_organization.role;
  const [name, setName] = useState(apiKey.name);
  const [rpm, setRpm] = useState(apiKey.rpm_limit ? String(apiKey.rpm_limit) : '');
  const [tpm, setTpm] = useState(apiKey.tpm_limit ? String(apiKey.tpm_limit) : '');
  const [technical, setTechnical] = useState(apiKey.activation.technical);
  const [economic, setEconomic] = useState(apiKey.activation.economic);
  const [priority, setPriority] = useState<KeyPriority>(apiKey.priority);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    update.mutate(
      {
        id: apiKey.id,
        body: {
          name: name.trim(),
          rpm_limit: limitChange(apiKey.rpm_limit, rpm),
          tpm_limit: limitChange(apiKey.tpm_limit, tpm),
          ...(priority !== apiKey.priority ? { priority } : {}),
          ...(can(role, 'ActivateTechnical') ? { technical } : {}),
          ...(can(role, 'ActivateEconomic') ? { economic } : {}),
        },
      },
      { onSuccess: onClose },
    );
  };
  return (
    <form className="form" onSubmit={submit} aria-label={`Edit ${apiKey.name}`}>
      <Field label="Name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
      <div className="form-row">
        <Field label="Requests per minute" type="number" min={1} max={100000000} value={rpm} onChange={(e) => setRpm(e.target.value)} hint="Empty: no limit." />
        <Field label="Tokens per minute" type="number" min={1} max={100000000} value={tpm} onChange={(e) => setTpm(e.target.value)} hint="Empty: no limit." />
      </div>
      <PriorityChoice value={priority} onChange={setPriority} />
      <label className="checkbox">
        <input type="checkbox" role="switch" checked={technical} disabled={!can(role, 'ActivateTechnical')} onChange={(e) => setTechnical(e.target.checked)} />{' '}
        Technical activation (owners, admins)
      </label>
      <label className="checkbox">
        <input type="checkbox" role="switch" checked={economic} disabled={!can(role, 'ActivateEconomic')} onChange={(e) => setEconomic(e.target.checked)} />{' '}
        Economic activation (owners, managers)
      </label>
      <ErrorMessage error={update.error} />
      <div className="form-actions">
        <button type="button" className="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" className="button button-primary" disabled={update.isPending}>
          Save
        </button>
      </div>
    </form>
  );
}
