// The provider settings forms' checks, the same as the API's (so a mistake
// is shown before sending): Scaleway credentials
// (inventiv-api/src/routes/provider_credentials.rs), the Hugging Face token
// (inventiv-api/src/routes/huggingface_token.rs) and worker settings
// (inventiv-common/src/worker_settings.rs, bounds and defaults).
import { ApiError } from '../api/client';
import type { ScalewayCredentials, WorkerSettings } from '../api/types';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The first problem of a credentials form, or null when it can be sent. */
export function credentialsProblem(c: ScalewayCredentials): string | null {
  if (!/^SCW[A-Z0-9]{17}$/.test(c.access_key.trim())) return 'Access key: SCW followed by 17 capital letters or digits.';
  if (!UUID.test(c.secret_key.trim())) return "Secret key: the API key's secret, a UUID.";
  if (!UUID.test(c.project_id.trim())) return 'Project id: a UUID.';
  if (!UUID.test(c.organization_id.trim())) return 'Organization id: a UUID.';
  if (!c.default_zone) return 'Default zone: choose one.';
  return null;
}

/** The body to send: values trimmed. */
export function credentialsBody(c: ScalewayCredentials): ScalewayCredentials {
  return {
    access_key: c.access_key.trim(),
    secret_key: c.secret_key.trim(),
    project_id: c.project_id.trim(),
    organization_id: c.organization_id.trim(),
    default_zone: c.default_zone,
  };
}

/** The problem of a Hugging Face token as typed, or null when it can be sent (trimmed). */
export function huggingFaceTokenProblem(token: string): string | null {
  return /^hf_[A-Za-z0-9]{20,200}$/.test(token.trim()) ? null : 'Token: hf_ followed by 20 to 200 letters or digits.';
}

/** A refused removal, worded for people: 409 CREDENTIALS_IN_USE says which instances hold them. */
export function removalError(error: unknown): unknown {
  if (error instanceof ApiError && error.code === 'CREDENTIALS_IN_USE') {
    return new Error(`Cannot remove them while instances use them: ${error.message}`);
  }
  return error;
}

export const WORKER_DEFAULTS: WorkerSettings = {
  mode: 'mono',
  engine_port: 8000,
  agent_port: 8090,
  startup_timeout_secs: 900,
  bootstrap_attempts: 3,
  dead_man_after_s: 1800,
  dead_man_poweroff: false,
};

type TypedWorkerField = Exclude<keyof WorkerSettings, 'dead_man_poweroff'>;

/** The worker settings form: numbers as typed, the Scaleway power-off as a checkbox. */
export type WorkerForm = { [K in TypedWorkerField]: string } & { dead_man_poweroff: boolean };

export function workerForm(s: WorkerSettings): WorkerForm {
  return {
    mode: s.mode,
    engine_port: String(s.engine_port),
    agent_port: String(s.agent_port),
    startup_timeout_secs: String(s.startup_timeout_secs),
    bootstrap_attempts: String(s.bootstrap_attempts),
    dead_man_after_s: String(s.dead_man_after_s),
    dead_man_poweroff: s.dead_man_poweroff,
  };
}

/** A whole number in [min, max], or null. */
function bounded(value: string, min: number, max: number): number | null {
  if (!/^\d+$/.test(value.trim())) return null;
  const n = Number(value);
  return n >= min && n <= max ? n : null;
}

/** The settings to send, or the first field out of bounds (worded as the API does). */
export function parseWorkerForm(f: WorkerForm): { settings: WorkerSettings } | { problem: string } {
  if (f.mode !== 'mono' && f.mode !== 'multi') return { problem: 'mode: mono or multi' };
  // The relay listens on engine_port, the engines (up to 16) on the ports after it.
  const engine = bounded(f.engine_port, 1024, 65519);
  if (engine === null) return { problem: 'engine_port: 1024 to 65519' };
  const agent = bounded(f.agent_port, 1024, 65535);
  if (agent === null) return { problem: 'agent_port: 1024 to 65535' };
  if (agent >= engine && agent <= engine + 16) {
    return { problem: "agent_port: must differ from engine_port and the 16 ports after it (the engines')" };
  }
  const timeout = bounded(f.startup_timeout_secs, 60, 7200);
  if (timeout === null) return { problem: 'startup_timeout_secs: 60 to 7200' };
  const attempts = bounded(f.bootstrap_attempts, 1, 10);
  if (attempts === null) return { problem: 'bootstrap_attempts: 1 to 10' };
  const deadMan = bounded(f.dead_man_after_s, 0, 86400);
  if (deadMan === null || (deadMan !== 0 && deadMan < 300)) return { problem: 'dead_man_after_s: 0 (never) or 300 to 86400' };
  return {
    settings: {
      mode: f.mode,
      engine_port: engine,
      agent_port: agent,
      startup_timeout_secs: timeout,
      bootstrap_attempts: attempts,
      dead_man_after_s: deadMan,
      dead_man_poweroff: f.dead_man_poweroff,
    },
  };
}
