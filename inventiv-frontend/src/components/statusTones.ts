// The badge tone of every status the API answers with, one map per enum.
// Each map is a Record over the generated enum type: a status added to the
// API (and regenerated into schema.ts) fails the type check until it has a
// tone here, and a status removed from it does too.
import type { ActionStatus, HostStatus, InstanceStatus, InvitationStatus, KeyStatus, ServiceEventKind, ServiceState, ShareStatus, VolumeStatus } from '../api/types';

export type Tone = 'ok' | 'busy' | 'warn' | 'off' | 'bad';

const instance: Record<InstanceStatus, Tone> = {
  provisioning: 'busy',
  booting: 'busy',
  installing: 'busy',
  starting: 'busy',
  ready: 'ok',
  draining: 'warn',
  terminating: 'warn',
  terminated: 'off',
  archived: 'off',
  provisioning_failed: 'bad',
  startup_failed: 'bad',
  worker_dead: 'bad',
};

const action: Record<ActionStatus, Tone> = {
  in_progress: 'busy',
  success: 'ok',
  failed: 'bad',
};

const volume: Record<VolumeStatus, Tone> = {
  attached: 'ok',
  deleted: 'off',
  missing: 'bad',
};

const share: Record<ShareStatus, Tone> = {
  active: 'ok',
  paused: 'warn',
  revoked: 'off',
};

const invitation: Record<InvitationStatus, Tone> = {
  pending: 'warn',
  accepted: 'ok',
  revoked: 'off',
  expired: 'off',
};

const key: Record<KeyStatus, Tone> = {
  active: 'ok',
  inactive: 'warn',
  expired: 'off',
  revoked: 'off',
};

const service: Record<ServiceState, Tone> = {
  active: 'ok',
  paused: 'warn',
  deleting: 'warn',
  deleted: 'off',
};

const serviceEvent: Record<ServiceEventKind, Tone> = {
  created: 'ok',
  updated: 'busy',
  paused: 'warn',
  resumed: 'ok',
  deleting: 'warn',
  deleted: 'off',
  scaled: 'busy',
  replica_created: 'ok',
  replica_terminated: 'off',
  placement_failed: 'bad',
  budget_capped: 'bad',
  rollout_started: 'busy',
  rollout_finished: 'ok',
};

const host: Record<HostStatus, Tone> = {
  registered: 'busy',
  verified: 'ok',
  in_use: 'ok',
  draining: 'warn',
  unreachable: 'bad',
  removed: 'off',
};

/** The tone maps by kind of status, for `StatusBadge`. */
export const statusTones = { instance, action, volume, share, invitation, key, service, serviceEvent, host };

export type StatusKind = keyof typeof statusTones;
