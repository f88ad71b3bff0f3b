// Provider settings of the current organization (owners and admins): the
// Scaleway credentials (set, verify, remove; the secret is typed into a
// password field and never shown again, the API only gives a masked hint),
// the Hugging Face token that gated models need (the same way), and the
// worker settings per provider (bounds and defaults of the API).
import { useState, type FormEvent } from 'react';
import type { CredentialsStatus, ScalewayCredentials, WorkerSettings } from '../api/types';
import { Badge, Card, DateText, ErrorMessage, Field, Loading, PageHeader, SelectField } from '../components/ui';
import { useProviders, useZones } from '../instances/api';
import { useCredentials, useCredentialsActions, useHuggingFaceToken, useHuggingFaceTokenActions, useSaveWorkerSettings, useWorkerSettings } from './api';
import { WORKER_DEFAULTS, credentialsBody, credentialsProblem, huggingFaceTokenProblem, parseWorkerForm, removalError, workerForm, type WorkerForm } from './forms';

const SCALEWAY = 'scaleway';

const EMPTY: ScalewayCredentials = { access_key: '', secret_key: '', project_id: '', organization_id: '', default_zone: '' };

function CredentialsState({ status }: { status: CredentialsStatus }) {
  if (!status.configured) return <p data-testid="credentials-state">Not set: deployments on Scaleway are refused until they are.</p>;
  const v = status.last_verification;
  return (
    <dl className="facts" data-testid="credentials-state">
      <dt>Status</dt>
      <dd>Set</dd>
      <dt>Key</dt>
      <dd><code>{status.hint}</code></dd>
      <dt>Updated</dt>
      <dd><DateText value={status.updated_at} /></dd>
      <dt>Last verification</dt>
      <dd data-testid="verification">
        {v ? (
          <>
            <Badge tone={v.ok ? 'ok' : 'bad'}>{v.ok ? 'accepted' : 'failed'}</Badge> {v.message} (<DateText value={v.at} />)
          </>
        ) : (
          'never verified'
        )}
      </dd>
    </dl>
  );
}

function CredentialsCard() {
  const status = useCredentials(SCALEWAY);
  const zones = useZones(SCALEWAY);
  const { save, verify, remove } = useCredentialsActions(SCALEWAY);
  const [form, setForm] = useState<ScalewayCredentials>(EMPTY);
  const [problem, setProblem] = useState<string | null>(null);
  const set = (k: keyof ScalewayCredentials) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const found = credentialsProblem(form);
    setProblem(found);
    if (found) return;
    // The form is emptied once saved: the secret stays only in the API, encrypted.
    save.mutate(credentialsBody(form), { onSuccess: () => setForm(EMPTY) });
  };
  const configured = status.data?.configured ?? false;
  return (
    <Card title="Scaleway credentials">
      {status.isPending ? <Loading /> : status.isError ? <ErrorMessage error={status.error} /> : <CredentialsState status={status.data} />}
      {configured ? (
        <div className="form-row">
          <button type="button" className="button" disabled={verify.isPending} onClick={() => verify.mutate()}>
            {verify.isPending ? 'Verifying…' : 'Verify'}
          </button>
          <button
            type="button"
            className="button button-danger"
            disabled={remove.isPending}
            onClick={() => {
              if (window.confirm('Remove the Scaleway credentials? Deployments on Scaleway will be refused.')) remove.mutate();
            }}
          >
            Remove
          </button>
        </div>
      ) : null}
      <ErrorMessage error={verify.error} />
      <ErrorMessage error={removalError(remove.error)} />
      <form className="form" aria-label="Scaleway credentials" onSubmit={submit} autoComplete="off">
        <Field label="Access key" value={form.access_key} onChange={set('access_key')} placeholder="SCWXXXXXXXXXXXXXXXXX" required />
        <Field label="Secret key" type="password" autoComplete="new-password" value={form.secret_key} onChange={set('secret_key')} required />
        <Field label="Project id" value={form.project_id} onChange={set('project_id')} required />
        <Field label="Organization id" value={form.organization_id} onChange={set('organization_id')} hint="Scaleway's organization, not this one." required />
        <SelectField label="Default zone" value={form.default_zone} onChange={set('default_zone')} required>
          <option value="">Choose…</option>
          {(zones.data ?? []).map((z) => (
            <option key={z.code} value={z.code}>
              {z.code} ({z.name})
            </option>
          ))}
        </SelectField>
        <div>
          <button type="submit" className="button button-primary" disabled={save.isPending}>
            {configured ? 'Replace the credentials' : 'Save the credentials'}
          </button>
        </div>
        {problem ? (
          <p className="error" role="alert">
            {problem}
          </p>
        ) : null}
        <ErrorMessage error={save.error} />
      </form>
    </Card>
  );
}

function HuggingFaceTokenCard() {
  const status = useHuggingFaceToken();
  const { save, remove } = useHuggingFaceTokenActions();
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const found = huggingFaceTokenProblem(token);
    setProblem(found);
    if (found) return;
    // Emptied once saved: the token stays only in the API, encrypted.
    save.mutate({ token: token.trim() }, { onSuccess: () => setToken('') });
  };
  const configured = status.data?.configured ?? false;
  return (
    <Card title="Hugging Face token">
      <p className="muted">
        Gated models (Llama, Gemma, some Mistral models…) are downloaded with this token: use a read token of a Hugging Face account that accepted
        their terms. Only the nodes of gated models receive it.
      </p>
      {status.isPending ? <Loading /> : status.isError ? <ErrorMessage error={status.error} /> : status.data.configured ? (
        <dl className="facts" data-testid="huggingface-token-state">
          <dt>Status</dt>
          <dd>Set</dd>
          <dt>Token</dt>
          <dd><code>{status.data.hint}</code></dd>
          <dt>Updated</dt>
          <dd><DateText value={status.data.updated_at} /></dd>
        </dl>
      ) : (
        <p data-testid="huggingface-token-state">Not set: deployments of gated models are refused until it is.</p>
      )}
      {configured ? (
        <div className="form-row">
          <button
            type="button"
            className="button button-danger"
            disabled={remove.isPending}
            onClick={() => {
              if (window.confirm('Remove the Hugging Face token? Deployments of gated models will be refused.')) remove.mutate();
            }}
          >
            Remove
          </button>
        </div>
      ) : null}
      <ErrorMessage error={remove.error} />
      <form className="form" aria-label="Hugging Face token" onSubmit={submit} autoComplete="off">
        <Field label="Token" type="password" autoComplete="new-password" value={token} onChange={(e) => setToken(e.target.value)} placeholder="hf_…" required />
        <div>
          <button type="submit" className="button button-primary" disabled={save.isPending}>
            {configured ? 'Replace the token' : 'Save the token'}
          </button>
        </div>
        {problem ? (
          <p className="error" role="alert">
            {problem}
          </p>
        ) : null}
        <ErrorMessage error={save.error} />
      </form>
    </Card>
  );
}

function WorkerSettingsForm({ provider, current }: { provider: string; current: WorkerSettings }) {
  const save = useSaveWorkerSettings(provider);
  const [form, setForm] = useState<WorkerForm>(workerForm(current));
  const [problem, setProblem] = useState<string | null>(null);
  const set = (k: Exclude<keyof WorkerForm, 'dead_man_poweroff'>) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const parsed = parseWorkerForm(form);
    if ('problem' in parsed) {
      setProblem(parsed.problem);
      return;
    }
    setProblem(null);
    save.mutate(parsed.settings);
  };
  return (
    // noValidate: the bounds are checked by parseWorkerForm, whose messages are the API's.
    <form className="form" aria-label="Worker settings" onSubmit={submit} noValidate>
      <SelectField label="GPU mode by default" value={form.mode} onChange={set('mode')}>
        <option value="mono">mono (one engine on all GPUs)</option>
        <option value="multi">multi (one engine per GPU)</option>
      </SelectField>
      <Field label="Engine port" type="number" min={1024} max={65519} value={form.engine_port} onChange={set('engine_port')} hint={`1024 to 65519 (the node's relay, TLS; the engines use the 16 ports after it on loopback), default ${WORKER_DEFAULTS.engine_port}`} />
      <Field label="Agent port" type="number" min={1024} max={65535} value={form.agent_port} onChange={set('agent_port')} hint={`1024 to 65535, not the engine port nor the 16 after it, default ${WORKER_DEFAULTS.agent_port}`} />
      <Field label="Start-up timeout (s)" type="number" min={60} max={7200} value={form.startup_timeout_secs} onChange={set('startup_timeout_secs')} hint={`60 to 7200, default ${WORKER_DEFAULTS.startup_timeout_secs}`} />
      <Field label="Bootstrap attempts" type="number" min={1} max={10} value={form.bootstrap_attempts} onChange={set('bootstrap_attempts')} hint={`1 to 10, default ${WORKER_DEFAULTS.bootstrap_attempts}`} />
      <Field
        label="Dead-man switch (s)"
        type="number"
        min={0}
        max={86400}
        value={form.dead_man_after_s}
        onChange={set('dead_man_after_s')}
        hint={`An idle node whose control plane has been silent this long powers itself off: 0 (never) or 300 to 86400, default ${WORKER_DEFAULTS.dead_man_after_s}`}
      />
      {provider === SCALEWAY ? (
        <label className="checkbox">
          <input type="checkbox" checked={form.dead_man_poweroff} onChange={(e) => setForm({ ...form, dead_man_poweroff: e.target.checked })} />
          Power off through Scaleway's API, which stops the compute billing (a shutdown leaves the server billed). Puts this organization's Scaleway secret key on its nodes.
        </label>
      ) : null}
      <div className="form-row">
        <button type="submit" className="button button-primary" disabled={save.isPending}>
          Save the worker settings
        </button>
        <button type="button" className="button" onClick={() => setForm(workerForm(WORKER_DEFAULTS))}>
          Defaults
        </button>
        {save.isSuccess && !save.isPending ? <span role="status">Saved.</span> : null}
      </div>
      {problem ? (
        <p className="error" role="alert">
          {problem}
        </p>
      ) : null}
      <ErrorMessage error={save.error} />
    </form>
  );
}

function WorkerSettingsCard() {
  const providers = useProviders();
  const [provider, setProvider] = useState(SCALEWAY);
  const settings = useWorkerSettings(provider);
  return (
    <Card title="Worker settings">
      <p className="muted">How this organization's nodes run the worker, per provider. Unset fields take the defaults.</p>
      <SelectField label="Provider" value={provider} onChange={(e) => setProvider(e.target.value)}>
        {(providers.data ?? [{ code: SCALEWAY, name: 'Scaleway' }]).map((p) => (
          <option key={p.code} value={p.code}>
            {p.name}
          </option>
        ))}
      </SelectField>
      {settings.isPending ? <Loading /> : settings.isError ? <ErrorMessage error={settings.error} /> : (
        // One form per provider, filled from its settings when shown (a save keeps what was typed, which is what the API stored).
        <WorkerSettingsForm key={provider} provider={provider} current={settings.data} />
      )}
    </Card>
  );
}

export function ProvidersPage() {
  return (
    <>
      <PageHeader title="Providers" />
      <p className="muted">
        This organization's cloud accounts: its servers are created with these credentials only. They are stored encrypted and never shown again.
      </p>
      <CredentialsCard />
      <HuggingFaceTokenCard />
      <WorkerSettingsCard />
    </>
  );
}
