// Registering a host: the organization's public key to authorize on it
// first (shown and copyable), then its address, SSH user, pool, GPUs and
// cost, checked with the API's bounds before they are sent; the API's
// refusal is shown in its words. A registered host is verified from the
// list once the key is in place.
import { useState, type FormEvent } from 'react';
import { CopyButton } from '../components/CopyButton';
import { Dialog } from '../components/Dialog';
import { ErrorMessage, Field, Loading } from '../components/ui';
import { useRegisterHost, useSshKey } from './api';
import { BOUNDS, EMPTY_HOST, parseHost, type HostErrors, type HostForm } from './hostForm';

export function RegisterHostDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  return (
    <Dialog title="Register a host" open={open} onClose={onClose} wide>
      {open ? <RegisterHostForm onClose={onClose} /> : null}
    </Dialog>
  );
}

const FIELDS: { key: keyof HostForm; label: string; hint: string; inputMode?: 'numeric' | 'decimal'; placeholder?: string }[] = [
  { key: 'label', label: 'Label', hint: `1 to ${BOUNDS.maxLabel} characters`, placeholder: 'gpu-box-1' },
  { key: 'address', label: 'Address', hint: 'an IP address or a DNS name', placeholder: '10.0.0.12' },
  { key: 'ssh_port', label: 'SSH port', hint: `1 to 65535; empty: ${BOUNDS.defaultSshPort}`, inputMode: 'numeric' },
  { key: 'ssh_user', label: 'SSH user', hint: `letters, digits, '.', '_', '-'; at most ${BOUNDS.maxSshUser}`, placeholder: 'ubuntu' },
  { key: 'pool', label: 'Pool', hint: `1 to ${BOUNDS.maxPool} letters, digits, '-', '_', '.'`, placeholder: 'paris-rack-2' },
  { key: 'gpu_count', label: 'GPUs', hint: `0 to ${BOUNDS.maxGpus}; with nvidia-smi on the host, the verification reads them`, inputMode: 'numeric' },
  { key: 'gpu_model', label: 'GPU model', hint: 'required with GPUs, e.g. NVIDIA L4', placeholder: 'NVIDIA L4' },
  { key: 'gpu_vram_mib', label: 'VRAM per GPU (MiB)', hint: `required with GPUs: ${BOUNDS.vramMin} to ${BOUNDS.vramMax} (24 GiB = 24576)`, inputMode: 'numeric' },
  { key: 'hourly_cost_eur', label: 'Hourly cost (EUR)', hint: 'amortization and power, e.g. 0.45; empty: no cost', inputMode: 'decimal' },
];

function RegisterHostForm({ onClose }: { onClose: () => void }) {
  const key = useSshKey(true);
  const register = useRegisterHost();
  const [form, setForm] = useState<HostForm>(EMPTY_HOST);
  const [errors, setErrors] = useState<HostErrors>({});

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const parsed = parseHost(form);
    if (!parsed.ok) {
      setErrors(parsed.errors);
      return;
    }
    setErrors({});
    register.mutate(parsed.body, { onSuccess: onClose });
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Register a host" noValidate>
      <fieldset className="fieldset fieldset-open">
        <legend>1. Authorize the organization’s key on the host</legend>
        <p className="muted small">
          Add this line to <code>~/.ssh/authorized_keys</code> of the SSH user on the host: the control plane logs in with it to verify the host and,
          later, to install models there.
        </p>
        {key.isPending ? (
          <Loading label="Loading the key…" />
        ) : key.isError ? (
          <ErrorMessage error={key.error} />
        ) : (
          <>
            <div className="secret-row">
              <input className="secret" readOnly value={key.data.public_key} aria-label="Public key to authorize" onFocus={(e) => e.target.select()} />
              <CopyButton text={key.data.public_key} />
            </div>
            <p className="muted small">Fingerprint {key.data.fingerprint}</p>
          </>
        )}
      </fieldset>
      <fieldset className="fieldset fieldset-open">
        <legend>2. Describe the host</legend>
        <div className="form-row">
          {FIELDS.map((f) => {
            const error = errors[f.key];
            return (
              <Field
                key={f.key}
                label={f.label}
                name={f.key}
                inputMode={f.inputMode}
                placeholder={f.placeholder}
                value={form[f.key]}
                aria-invalid={error ? true : undefined}
                onChange={(e) => setForm({ ...form, [f.key]: e.target.value })}
                hint={error ? <span className="error">{error}</span> : f.hint}
              />
            );
          })}
        </div>
      </fieldset>
      <ErrorMessage error={register.error} />
      <div className="form-actions">
        <button type="button" className="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" className="button button-primary" disabled={register.isPending}>
          {register.isPending ? 'Registering…' : 'Register'}
        </button>
      </div>
    </form>
  );
}
