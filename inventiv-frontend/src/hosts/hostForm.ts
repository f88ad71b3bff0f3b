// The registration form of a host, checked with the API's bounds
// (inventiv_common::host, routes/hosts.rs) before it is sent; the API stays
// the judge and its refusal is shown in its words.
import type { RegisterHost } from '../api/types';

/** The API's bounds (a unit test reads them from inventiv-common/src/host.rs). */
export const BOUNDS = {
  maxLabel: 100,
  maxPool: 63,
  maxAddress: 253,
  maxSshUser: 32,
  maxGpus: 16,
  maxGpuModel: 100,
  vramMin: 1024,
  vramMax: 1_048_576,
  defaultSshPort: 22,
};

export interface HostForm {
  label: string;
  address: string;
  ssh_port: string;
  ssh_user: string;
  pool: string;
  gpu_count: string;
  gpu_model: string;
  gpu_vram_mib: string;
  hourly_cost_eur: string;
}

export type HostErrors = Partial<Record<keyof HostForm, string>>;

export const EMPTY_HOST: HostForm = {
  label: '',
  address: '',
  ssh_port: String(BOUNDS.defaultSshPort),
  ssh_user: '',
  pool: '',
  gpu_count: '0',
  gpu_model: '',
  gpu_vram_mib: '',
  hourly_cost_eur: '',
};

const chars = (s: string) => [...s].length;

function isIpv6(address: string): boolean {
  if (!address.includes(':')) return false;
  try {
    return new URL(`http://[${address}]/`).hostname !== '';
  } catch {
    return false;
  }
}

/** An IP address or a DNS name: labels of letters, digits and `-`, not starting or ending with `-`. */
export function validAddress(address: string): boolean {
  if (isIpv6(address)) return true;
  return (
    address.length >= 1 &&
    address.length <= BOUNDS.maxAddress &&
    address.split('.').every((label) => label.length >= 1 && label.length <= 63 && /^[A-Za-z0-9-]+$/.test(label) && !label.startsWith('-') && !label.endsWith('-'))
  );
}

export function validSshUser(user: string): boolean {
  return user.length >= 1 && user.length <= BOUNDS.maxSshUser && !user.startsWith('-') && /^[A-Za-z0-9._-]+$/.test(user);
}

export function validPool(pool: string): boolean {
  return pool.length >= 1 && pool.length <= BOUNDS.maxPool && /^[A-Za-z0-9._-]+$/.test(pool);
}

/** An integer written in digits only, or null. */
function integer(value: string): number | null {
  return /^\d{1,9}$/.test(value.trim()) ? Number(value.trim()) : null;
}

export function parseHost(form: HostForm): { ok: true; body: RegisterHost } | { ok: false; errors: HostErrors } {
  const errors: HostErrors = {};
  const label = form.label.trim();
  if (label === '' || chars(label) > BOUNDS.maxLabel) errors.label = `Label: 1 to ${BOUNDS.maxLabel} characters`;
  const address = form.address.trim();
  if (!validAddress(address)) errors.address = 'Address: an IP address or a DNS name';
  let sshPort: number | null = null;
  if (form.ssh_port.trim() !== '') {
    sshPort = integer(form.ssh_port);
    if (sshPort === null || sshPort < 1 || sshPort > 65535) errors.ssh_port = 'SSH port: 1 to 65535';
  }
  const user = form.ssh_user.trim();
  if (!validSshUser(user)) errors.ssh_user = `SSH user: 1 to ${BOUNDS.maxSshUser} letters, digits, '.', '_', '-', not starting with '-'`;
  const pool = form.pool.trim();
  if (!validPool(pool)) errors.pool = `Pool: 1 to ${BOUNDS.maxPool} letters, digits, '-', '_', '.'`;
  const gpuCount = form.gpu_count.trim() === '' ? 0 : integer(form.gpu_count);
  if (gpuCount === null || gpuCount > BOUNDS.maxGpus) errors.gpu_count = `GPUs: 0 to ${BOUNDS.maxGpus}`;
  const model = form.gpu_model.trim();
  if (chars(model) > BOUNDS.maxGpuModel) errors.gpu_model = `GPU model: 1 to ${BOUNDS.maxGpuModel} characters`;
  let vram: number | null = null;
  if (form.gpu_vram_mib.trim() !== '') {
    vram = integer(form.gpu_vram_mib);
    if (vram === null || vram < BOUNDS.vramMin || vram > BOUNDS.vramMax) errors.gpu_vram_mib = `VRAM per GPU: ${BOUNDS.vramMin} to ${BOUNDS.vramMax} MiB`;
  }
  if (gpuCount !== null && gpuCount > 0) {
    if (model === '') errors.gpu_model ??= 'GPU model: required with GPUs';
    if (vram === null) errors.gpu_vram_mib ??= 'VRAM per GPU: required with GPUs';
  }
  const cost = form.hourly_cost_eur.trim();
  if (cost !== '' && !/^\d{1,8}(\.\d{1,4})?$/.test(cost)) errors.hourly_cost_eur = 'Hourly cost: a non-negative decimal like "0.45" (at most 8 digits and 4 decimals)';
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return {
    ok: true,
    body: {
      label,
      address,
      ssh_port: sshPort,
      ssh_user: user,
      pool,
      gpu_count: gpuCount ?? 0,
      gpu_model: model === '' ? null : model,
      gpu_vram_mib: vram,
      hourly_cost_eur: cost === '' ? null : cost,
    },
  };
}
