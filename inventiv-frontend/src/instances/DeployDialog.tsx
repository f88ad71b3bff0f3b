// Deploying a model: provider → zone → instance type of that zone → a model
// that fits it (mandatory). Items the organization has not activated yet
// are listed with what they miss and can be chosen: the dialog then says
// which, and "Activate this path" switches on both sides of each at once
// (for a caller allowed both; else it says who must). Deploy waits for an
// operational path. The chosen type's cost per hour, day and month is shown.
import { Link, useNavigate } from 'react-router';
import { useState, type FormEvent } from 'react';
import type { Activation } from '../api/types';
import { useCan } from '../auth/useMe';
import { Dialog } from '../components/Dialog';
import { ErrorMessage, Field, SelectField } from '../components/ui';
import { useCompatibleModels, useDeploy, useInstanceTypes, useProviders, useZones } from './api';
import { formatEur } from '../components/format';
import { costEstimate, HOURS_PER_MONTH, pathGaps, sidesBeyond, useActivatePath } from './deployPath';

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
  const activate = useActivatePath();
  const allowed = { technical: useCan('ActivateTechnical'), economic: useCan('ActivateEconomic') };
  const providerRow = providers.data?.find((p) => p.code === provider);
  const zoneRow = zones.data?.find((z) => z.code === zone);
  const modelRow = models.data?.find((m) => m.id === modelId);
  const gaps = pathGaps([
    providerRow && { kind: 'provider', itemId: providerRow.code, name: providerRow.name, activation: providerRow.activation },
    zoneRow && { kind: 'zone', itemId: zoneRow.id, name: zoneRow.name, activation: zoneRow.activation },
    type && { kind: 'instance_type', itemId: type.id, name: type.code, activation: type.activation },
    modelRow && { kind: 'model', itemId: modelRow.id, name: modelRow.display_name, activation: modelRow.activation },
  ]);
  const beyond = sidesBeyond(gaps, allowed);
  const cost = type ? costEstimate(type.price_eur_per_hour) : null;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!type || !modelId || gaps.length > 0) return;
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
          <option key={p.code} value={p.code} disabled={!p.active}>
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
          <option key={z.id} value={z.code} disabled={!z.active}>
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
          <option key={t.id} value={t.id} disabled={!t.active}>
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
          <option key={m.id} value={m.id} disabled={!m.active}>
            {m.display_name} ({m.required_vram_gb} GB{m.gated ? ', gated: needs the Hugging Face token' : ''}){missing(m.activation)}
          </option>
        ))}
      </SelectField>
      {gaps.length > 0 ? (
        <div className="notice" role="group" aria-label="Not activated">
          <p>
            Not activated for this organization yet:{' '}
            {gaps.map((g, n) => (
              <span key={g.kind}>
                {n > 0 ? '; ' : ''}
                <strong>{g.name}</strong> ({g.sides.join(' and ')})
              </span>
            ))}
            .
          </p>
          {beyond.length === 0 ? (
            <button type="button" className="button" disabled={activate.isPending} onClick={() => activate.mutate(gaps)}>
              {activate.isPending ? 'Activating…' : 'Activate this path'}
            </button>
          ) : (
            <p className="small">
              Your role does not switch the {beyond.join(' and ')} side: {beyond.includes('technical') ? 'an owner or an admin' : 'an owner or a manager'} can, in the{' '}
              <Link to="/catalog">catalog</Link>.
            </p>
          )}
          <ErrorMessage error={activate.error} />
        </div>
      ) : null}
      {type && cost ? (
        <div className="cost-estimate" role="group" aria-label="Cost estimate">
          <span className="muted">Cost estimate while it runs ({type.code}):</span>{' '}
          <strong>{formatEur(cost.hour, 'h')}</strong> · <strong>{formatEur(cost.day, 'day')}</strong> ·{' '}
          <strong>{formatEur(cost.month, 'month')}</strong> <span className="muted small">(a month of {HOURS_PER_MONTH} h; the instance type's price, volumes aside)</span>
        </div>
      ) : null}
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
        <button type="submit" className="button button-primary" disabled={!type || !modelId || gaps.length > 0 || deploy.isPending}>
          {deploy.isPending ? 'Deploying…' : 'Deploy'}
        </button>
      </div>
    </form>
  );
}
