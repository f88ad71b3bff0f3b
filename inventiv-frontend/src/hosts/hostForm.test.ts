import rust from '../../../inventiv-common/src/host.rs?raw';
import { BOUNDS, EMPTY_HOST, parseHost, validAddress, validPool, validSshUser } from './hostForm';

function constant(name: string): number {
  const m = new RegExp(`pub const ${name}: \\w+ = ([\\d_]+);`).exec(rust);
  if (!m?.[1]) throw new Error(`${name} not found in host.rs`);
  return Number(m[1].replace(/_/g, ''));
}

describe('host bounds, as the API checks them', () => {
  it('has the bounds of inventiv-common/src/host.rs', () => {
    expect(BOUNDS.maxLabel).toBe(constant('MAX_LABEL'));
    expect(BOUNDS.maxPool).toBe(constant('MAX_POOL'));
    expect(BOUNDS.maxAddress).toBe(constant('MAX_ADDRESS'));
    expect(BOUNDS.maxSshUser).toBe(constant('MAX_SSH_USER'));
    expect(BOUNDS.maxGpus).toBe(constant('MAX_GPUS'));
    expect(BOUNDS.maxGpuModel).toBe(constant('MAX_GPU_MODEL'));
    expect(BOUNDS.defaultSshPort).toBe(constant('DEFAULT_SSH_PORT'));
    const vram = /pub const VRAM_MIB: [^=]+= ([\d_]+)\.\.=([\d_]+);/.exec(rust);
    expect(vram?.slice(1).map((v) => Number(v.replace(/_/g, '')))).toEqual([BOUNDS.vramMin, BOUNDS.vramMax]);
  });
  it('takes IP addresses and DNS names, never something ssh reads as an option', () => {
    for (const ok of ['10.0.0.12', 'gpu-1.lab.example.com', '::1', 'fe80::1', 'localhost']) expect(validAddress(ok), ok).toBe(true);
    for (const bad of ['', '-oProxyCommand=x', 'user@host', 'a..b', 'bad-.example', 'a b', 'x'.repeat(64), ':::']) expect(validAddress(bad), bad).toBe(false);
    expect(validAddress(`${'a'.repeat(63)}.`.repeat(4).slice(0, 253))).toBe(true);
  });
  it('takes POSIX user names and pool names', () => {
    expect(validSshUser('ubuntu')).toBe(true);
    expect(validSshUser('-root')).toBe(false);
    expect(validSshUser('a'.repeat(33))).toBe(false);
    expect(validPool('paris-rack_2.a')).toBe(true);
    expect(validPool('paris/rack')).toBe(false);
    expect(validPool('p'.repeat(64))).toBe(false);
  });
  it('bounds the numbers and the cost', () => {
    const base = { ...EMPTY_HOST, label: 'l', address: 'h', ssh_user: 'u', pool: 'p' };
    const errors = (patch: Partial<typeof base>) => {
      const r = parseHost({ ...base, ...patch });
      return r.ok ? {} : r.errors;
    };
    expect(errors({})).toEqual({});
    expect(errors({ ssh_port: '0' }).ssh_port).toBe('SSH port: 1 to 65535');
    expect(errors({ ssh_port: '65536' }).ssh_port).toBe('SSH port: 1 to 65535');
    expect(errors({ gpu_count: '17' }).gpu_count).toBe('GPUs: 0 to 16');
    expect(errors({ gpu_count: '-1' }).gpu_count).toBe('GPUs: 0 to 16');
    expect(errors({ gpu_count: '1', gpu_model: 'L4', gpu_vram_mib: '1023' }).gpu_vram_mib).toBe('VRAM per GPU: 1024 to 1048576 MiB');
    expect(errors({ gpu_count: '1', gpu_model: 'L4', gpu_vram_mib: '1048576' })).toEqual({});
    expect(errors({ label: '   ' }).label).toBe('Label: 1 to 100 characters');
    expect(errors({ label: 'é'.repeat(100) })).toEqual({});
    expect(errors({ hourly_cost_eur: '123456789' }).hourly_cost_eur).toBeDefined();
    expect(errors({ hourly_cost_eur: '1.' }).hourly_cost_eur).toBeDefined();
    expect(errors({ hourly_cost_eur: '12345678.1234' })).toEqual({});
  });
});
