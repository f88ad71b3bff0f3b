// Creating a service: its placements in order (provider → zone → instance
// type, as the deploy dialog picks one; the first preferred, the next ones
// the fallback), a model that fits the first placement's type, and its
// policy, checked with the API's bounds before it is sent.
import { useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router';
import type { Activation, Placement } from '../api/types';
import { Dialog } from '../components/Dialog';
import { ErrorMessage, Field, SelectField } from '../components/ui';
import { useCompatibleModels, useInstanceTypes, useProviders, useZones } from '../instances/api';
import { useCreateService } from './api';
import { PolicyFields } from './PolicyFields';
import { EMPTY_POLICY, parsePolicy, type PolicyErrors } from './policy';
import { formatEur } from '../components/format';

const MAX_PLACEMENTS = 8;

function missing(a: Activation): string {
  return a.operational ? '' : ` (not activated: ${a.missing.join(', ')})`;
}

const same = (a: Placement, b: Placement) => a.provider === b.provider && a.zone === b.zone && a.instance_type === b.instance_type;

export function CreateServiceDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  return (
    <Dialog title="Create a service" open={open} onClose={onClose} wide>
      {open ? <CreateServiceForm onClose={onClose} /> : null}
    </Dialog>
  );
}

function CreateServiceForm({ onClose }: { onClose: () => void }) {
  const navigate = useNavigate();
  const create = useCreateService();
  const [placements, setPlacements] = useState<(Placement & { typeId: string })[]>([]);
  const [provider, setProvider] = useState('');
  const [zone, setZone] = useState('');
  const [typeId, setTypeId] = useState('');
  const [modelId, setModelId] = useState('');
  const [name, setName] = useState('');
  const [policy, setPolicy] = useState(EMPTY_POLICY);
  const [errors, setErrors] = useState<PolicyErrors>({});

  const providers = useProviders();
  const zones = useZones(provider || undefined);
  const types = useInstanceTypes(provider || undefined, zone || undefined, Boolean(provider && zone));
  const first = placements[0];
  const models = useCompatibleModels(first?.typeId);
  const type = types.data?.find((t) => t.id === typeId);
  const candidate = type ? { provider, zone, instance_type: type.code, typeId: type.id } : null;

  const add = () => {
    if (!candidate || placements.some((p) => same(p, candidate)) || placements.length >= MAX_PLACEMENTS) return;
    setPlacements([...placements, candidate]);
    setTypeId('');
  };
  const move = (n: number, by: -1 | 1) => {
    const next = [...placements];
    const [item] = next.splice(n, 1);
    if (!item) return;
    next.splice(n + by, 0, item);
    if (n === 0 || n + by === 0) setModelId('');
    setPlacements(next);
  };
  const remove = (n: number) => {
    if (n === 0) setModelId('');
    setPlacements(placements.filter((_, i) => i !== n));
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const parsed = parsePolicy(policy);
    if (!parsed.ok) {
      setErrors(parsed.errors);
      return;
    }
    setErrors({});
    if (placements.length === 0 || !modelId) return;
    create.mutate(
      {
        model_id: modelId,
        name: name.trim() || null,
        placements: placements.map(({ provider: p, zone: z, instance_type }) => ({ provider: p, zone: z, instance_type })),
        ...parsed.policy,
      },
      {
        onSuccess: (service) => {
          onClose();
          navigate(`/services/${service.id}`);
        },
      },
    );
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Create a service" noValidate>
      <fieldset className="fieldset fieldset-open">
        <legend>Placements, first preferred</legend>
        {placements.length === 0 ? (
          <p className="muted small">No placement yet: add at least one.</p>
        ) : (
          <ol className="placements" aria-label="Placements">
            {placements.map((p, n) => (
              <li key={`${p.provider}/${p.zone}/${p.instance_type}`}>
                {p.provider} / {p.zone} / {p.instance_type}{' '}
                <span className="row-actions">
                  <button type="button" className="button button-small" aria-label={`Move placement ${n + 1} up`} disabled={n === 0} onClick={() => move(n, -1)}>
                    ↑
                  </button>
                  <button
                    type="button"
                    className="button button-small"
                    aria-label={`Move placement ${n + 1} down`}
                    disabled={n === placements.length - 1}
                    onClick={() => move(n, 1)}
                  >
                    ↓
                  </button>
                  <button type="button" className="button button-small" aria-label={`Remove placement ${n + 1}`} onClick={() => remove(n)}>
                    Remove
                  </button>
                </span>
              </li>
            ))}
          </ol>
        )}
        <div className="form-row">
          <SelectField
            label="Provider"
            value={provider}
            onChange={(e) => {
              setProvider(e.target.value);
              setZone('');
              setTypeId('');
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
            disabled={!provider}
            value={zone}
            onChange={(e) => {
              setZone(e.target.value);
              setTypeId('');
            }}
          >
            <option value="">{provider ? 'Choose a zone…' : 'Choose a provider first'}</option>
            {zones.data?.map((z) => (
              <option key={z.id} value={z.code} disabled={!z.activation.operational || !z.active}>
                {z.name} ({z.code}){missing(z.activation)}
              </option>
            ))}
          </SelectField>
          <SelectField label="Instance type" disabled={!zone} value={typeId} onChange={(e) => setTypeId(e.target.value)}>
            <option value="">{zone ? 'Choose an instance type…' : 'Choose a zone first'}</option>
            {types.data?.map((t) => (
              <option key={t.id} value={t.id} disabled={!t.activation.operational || !t.active}>
                {t.code}: {t.gpu_count}×{t.vram_per_gpu_gb} GB, {formatEur(t.price_eur_per_hour, 'h')}{missing(t.activation)}
              </option>
            ))}
          </SelectField>
        </div>
        <div className="form-actions">
          <button
            type="button"
            className="button"
            onClick={add}
            disabled={!candidate || placements.some((p) => same(p, candidate)) || placements.length >= MAX_PLACEMENTS}
          >
            Add placement
          </button>
        </div>
      </fieldset>
      <SelectField
        label="Model"
        required
        disabled={!first}
        value={modelId}
        onChange={(e) => setModelId(e.target.value)}
        hint={first && models.data?.length === 0 ? 'No model of the catalog fits the first placement’s type.' : 'Models whose VRAM need the first placement’s type covers.'}
      >
        <option value="">{first ? 'Choose a model…' : 'Add a placement first'}</option>
        {models.data?.map((m) => (
          <option key={m.id} value={m.id} disabled={!m.activation.operational || !m.active}>
            {m.display_name} ({m.required_vram_gb} GB{m.gated ? ', gated: needs the Hugging Face token' : ''}){missing(m.activation)}
          </option>
        ))}
      </SelectField>
      <Field label="Name (optional)" maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
      <PolicyFields value={policy} errors={errors} onChange={setPolicy} />
      <ErrorMessage error={providers.error ?? zones.error ?? types.error ?? models.error ?? create.error} />
      <div className="form-actions">
        <button type="button" className="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" className="button button-primary" disabled={placements.length === 0 || !modelId || create.isPending}>
          {create.isPending ? 'Creating…' : 'Create'}
        </button>
      </div>
    </form>
  );
}
