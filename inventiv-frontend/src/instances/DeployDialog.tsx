// Deploying a model: provider → zone → instance type of that zone → a model
// that fits it (mandatory). Only operational (activated) items can be used;
// the others are listed, disabled, with what they miss.
import { useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router';
import type { Activation } from '../api/types';
import { Dialog } from '../components/Dialog';
import { ErrorMessage, Field, SelectField } from '../components/ui';
import { useCompatibleModels, useDeploy, useInstanceTypes, useProviders, useZones } from './api';
import { formatEur } from '../components/format';

function missing(a: Activation): string {
  return a.operational ? '' : ` (not activated: ${a.missing.join(', ')})`;
}

export function DeployDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  return (
    <Dialog title="Deploy a model" open={open} onClose={onClose} wide>
      {open ? <DeployForm onClose={onClose} /> : null}
    </Dialog>
  );
}

function DeployForm({ onClose }: { onClose: () => void }) {
  const navigate = useNavigate();
  const deploy = useDeploy();
  const [provider, setProvider] = useState('');
  const [zone, setZone] = useState('');
  const [typeId, setTypeId] = useState('');
  const [modelId, setModelId] = useState('');
  const [name, setName] = useState('');
  const [mode, setMode] = useState<'mono' | 'multi'>('mono');

  const providers = useProviders();
  const zones = useZones(provider || undefined);
  const types = useInstanceTypes(provider || undefined, zone || undefined, Boolean(provider && zone));
  const models = useCompatibleModels(typeId || undefined);
  const type = types.data?.find((t) => t.id === typeId);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!type || !modelId) return;
    deploy.mutate(
      { provider, zone, instance_type: type.code, model_id: modelId, name: name.trim() || null, mode },
      {
        onSuccess: (instance) => {
          onClose();
          navigate(`/instances/${instance.id}`);
        },
      },
    );
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Deploy a model">
      <SelectField
        label="Provider"
        required
        value={provider}
        onChange={(e) => {
          setProvider(e.target.value);
          setZone('');
          setTypeId('');
          setModelId('');
        }}
      >
        <option value="">Choose a provider…</option>
        {providers.data?.map((p) => (
          <option key={p.code} value={p.code} disabled={!p.activation.operational || !p.active}>
            {p.name}
            {missing(p.activation)}
          </option>
        ))}
      </SelectField>
      <SelectField
        label="Zone"
        required
        disabled={!provider}
        value={zone}
        onChange={(e) => {
          setZone(e.target.value);
          setTypeId('');
          setModelId('');
        }}
      >
        <option value="">{provider ? 'Choose a zone…' : 'Choose a provider first'}</option>
        {zones.data?.map((z) => (
          <option key={z.id} value={z.code} disabled={!z.activation.operational || !z.active}>
            {z.name} ({z.code}){missing(z.activation)}
          </option>
        ))}
      </SelectField>
      <SelectField
        label="Instance type"
        required
        disabled={!zone}
        value={typeId}
        onChange={(e) => {
          setTypeId(e.target.value);
          setModelId('');
        }}
      >
        <option value="">{zone ? 'Choose an instance type…' : 'Choose a zone first'}</option>
        {types.data?.map((t) => (
          <option key={t.id} value={t.id} disabled={!t.activation.operational || !t.active}>
            {t.code}: {t.gpu_count}×{t.vram_per_gpu_gb} GB, {formatEur(t.price_eur_per_hour, 'h')}{missing(t.activation)}
          </option>
        ))}
      </SelectField>
      <SelectField
        label="Model"
        required
        disabled={!typeId}
        value={modelId}
        onChange={(e) => setModelId(e.target.value)}
        hint={typeId && models.data?.length === 0 ? 'No model of the catalog fits this instance type.' : 'Models whose VRAM need this type covers.'}
      >
        <option value="">{typeId ? 'Choose a model…' : 'Choose an instance type first'}</option>
        {models.data?.map((m) => (
          <option key={m.id} value={m.id} disabled={!m.activation.operational || !m.active}>
            {m.display_name} ({m.required_vram_gb} GB{m.gated ? ', gated: needs the Hugging Face token' : ''}){missing(m.activation)}
          </option>
        ))}
      </SelectField>
      <Field label="Name (optional)" maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
      {type && type.gpu_count > 1 ? (
        <SelectField label="Mode" value={mode} onChange={(e) => setMode(e.target.value as 'mono' | 'multi')}>
          <option value="mono">mono: one engine on all GPUs</option>
          <option value="multi">multi: one engine per GPU</option>
        </SelectField>
      ) : null}
      <ErrorMessage error={providers.error ?? zones.error ?? types.error ?? models.error ?? deploy.error} />
      <div className="form-actions">
        <button type="button" className="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" className="button button-primary" disabled={!type || !modelId || deploy.isPending}>
          {deploy.isPending ? 'Deploying…' : 'Deploy'}
        </button>
      </div>
    </form>
  );
}
