import { describe, expect, it } from 'vitest';
import rust from '../../../inventiv-common/src/worker_settings.rs?raw';
import { ApiError, errorMessage } from '../api/client';
import { WORKER_DEFAULTS, credentialsBody, credentialsProblem, huggingFaceTokenProblem, parseWorkerForm, removalError, workerForm } from './forms';

const good = {
  access_key: 'SCWABCDEFGHIJ0123456',
  secret_key: '11111111-2222-4333-8444-555555555555',
  project_id: '0f0e0d0c-0b0a-4999-8888-777777777777',
  organization_id: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
  default_zone: 'fr-par-2',
};

describe('Scaleway credentials form', () => {
  it('accepts well-formed credentials and trims them', () => {
    expect(credentialsProblem(good)).toBeNull();
    expect(credentialsBody({ ...good, access_key: ` ${good.access_key} ` }).access_key).toBe(good.access_key);
  });
  it('names the first wrong field, as the API checks it', () => {
    expect(credentialsProblem({ ...good, access_key: 'SCWabcdefghij0123456' })).toMatch(/^Access key/);
    expect(credentialsProblem({ ...good, access_key: 'SCW123' })).toMatch(/^Access key/);
    expect(credentialsProblem({ ...good, secret_key: 'not-a-uuid' })).toMatch(/^Secret key/);
    expect(credentialsProblem({ ...good, project_id: '' })).toMatch(/^Project id/);
    expect(credentialsProblem({ ...good, organization_id: '1234' })).toMatch(/^Organization id/);
    expect(credentialsProblem({ ...good, default_zone: '' })).toMatch(/^Default zone/);
  });
});

describe('Hugging Face token form', () => {
  it('accepts hf_ and 20 to 200 letters or digits, blanks around ignored, as the API does', () => {
    expect(huggingFaceTokenProblem(' hf_abcdefghijABCDEFGHIJ0123456789ab\n')).toBeNull();
    expect(huggingFaceTokenProblem(`hf_${'a'.repeat(200)}`)).toBeNull();
    for (const bad of ['', 'hf_short', 'api_abcdefghijABCDEFGHIJ012345', 'hf_abcdefghij ABCDEFGHIJ012345', 'hf_abcdefghij-ABCDEFGHIJ012345', `hf_${'a'.repeat(201)}`]) {
      expect(huggingFaceTokenProblem(bad)).toMatch(/^Token: hf_ followed by/);
    }
  });
});

describe('removing credentials', () => {
  it('says clearly that instances still use them (409 CREDENTIALS_IN_USE)', () => {
    const inUse = new ApiError(409, 'CREDENTIALS_IN_USE', '2 instance(s) still use these credentials: terminate them first', 'req-1');
    expect(errorMessage(removalError(inUse))).toBe(
      'Cannot remove them while instances use them: 2 instance(s) still use these credentials: terminate them first',
    );
    const other = new ApiError(403, 'FORBIDDEN', 'not allowed');
    expect(removalError(other)).toBe(other);
    expect(removalError(null)).toBeNull();
  });
});

describe('worker settings form', () => {
  it('has the defaults of inventiv-common/src/worker_settings.rs', () => {
    const block = rust.slice(rust.indexOf('fn default() -> WorkerSettings'), rust.indexOf('impl WorkerSettings'));
    expect(block).toContain(`mode: "${WORKER_DEFAULTS.mode}".into()`);
    expect(block).toContain(`engine_port: ${WORKER_DEFAULTS.engine_port},`);
    expect(block).toContain(`agent_port: ${WORKER_DEFAULTS.agent_port},`);
    expect(block).toContain(`startup_timeout_secs: ${WORKER_DEFAULTS.startup_timeout_secs},`);
    expect(block).toContain(`bootstrap_attempts: ${WORKER_DEFAULTS.bootstrap_attempts},`);
    expect(block).toContain(`dead_man_after_s: ${WORKER_DEFAULTS.dead_man_after_s},`);
    expect(block).toContain(`dead_man_poweroff: ${WORKER_DEFAULTS.dead_man_poweroff},`);
  });
  it('round-trips the defaults', () => {
    expect(parseWorkerForm(workerForm(WORKER_DEFAULTS))).toEqual({ settings: WORKER_DEFAULTS });
  });
  it('refuses what the API refuses, with the API words, and accepts the bounds', () => {
    const form = workerForm(WORKER_DEFAULTS);
    const cases: [Partial<typeof form>, string | null][] = [
      [{ mode: 'dual' }, 'mode: mono or multi'],
      [{ engine_port: '1023' }, 'engine_port: 1024 to 65519'],
      [{ engine_port: '65520' }, 'engine_port: 1024 to 65519'],
      [{ agent_port: '8000' }, "agent_port: must differ from engine_port and the 16 ports after it (the engines')"],
      [{ agent_port: '8016' }, "agent_port: must differ from engine_port and the 16 ports after it (the engines')"],
      [{ agent_port: '80.5' }, 'agent_port: 1024 to 65535'],
      [{ startup_timeout_secs: '59' }, 'startup_timeout_secs: 60 to 7200'],
      [{ startup_timeout_secs: '7201' }, 'startup_timeout_secs: 60 to 7200'],
      [{ bootstrap_attempts: '0' }, 'bootstrap_attempts: 1 to 10'],
      [{ bootstrap_attempts: '' }, 'bootstrap_attempts: 1 to 10'],
      [{ dead_man_after_s: '299' }, 'dead_man_after_s: 0 (never) or 300 to 86400'],
      [{ dead_man_after_s: '86401' }, 'dead_man_after_s: 0 (never) or 300 to 86400'],
      [{ dead_man_after_s: '-1' }, 'dead_man_after_s: 0 (never) or 300 to 86400'],
      [{ dead_man_after_s: '0', dead_man_poweroff: true }, null],
      [{ dead_man_after_s: '300' }, null],
      [{ mode: 'multi', engine_port: '1024', agent_port: '65535', startup_timeout_secs: '7200', bootstrap_attempts: '10', dead_man_after_s: '86400' }, null],
    ];
    for (const [change, problem] of cases) {
      const parsed = parseWorkerForm({ ...form, ...change });
      expect('problem' in parsed ? parsed.problem : null, JSON.stringify(change)).toBe(problem);
    }
    // Every message is one the Rust validation gives (ports through a `{field}` format).
    for (const [, problem] of cases) {
      if (problem) expect(rust.includes(`"${problem}"`) || rust.includes(`"{field}: ${problem.split(': ')[1]}"`), problem).toBe(true);
    }
  });
});
