// Human labels for the steps of an instance's timeline (the action log's
// `action_type`), with the code kept beside them for support and search.

const LABELS: Record<string, string> = {
  PROVIDER_CREATE: 'Server created at the provider',
  PROVIDER_SECURITY_GROUP: 'Firewall rules set',
  PROVIDER_SECURITY_GROUP_DELETE: 'Firewall rules removed',
  PROVIDER_START: 'Server started',
  PROVIDER_GET_IP: 'Address assigned',
  PROVIDER_VOLUME_RESIZE: 'Boot volume resized for the model',
  PROVIDER_VOLUME_DELETE: 'Volume deleted',
  PROVIDER_TERMINATE: 'Server deleted at the provider',
  WORKER_SSH_ACCESSIBLE: 'SSH reachable',
  WORKER_SSH_INSTALL: 'Worker installed',
  WORKER_SSH_CHECK_BUNDLE: 'Bootstrap: agent bundle checked',
  WORKER_SSH_PREPARE_DIRS: 'Bootstrap: directories prepared',
  WORKER_SSH_MOUNT_DATA_VOLUME: 'Bootstrap: data volume mounted',
  WORKER_SSH_NVIDIA_CHECK: 'Bootstrap: GPUs checked',
  WORKER_SSH_PYTHON_VENV: 'Bootstrap: Python environment',
  WORKER_SSH_INSTALL_RELAY: 'Bootstrap: relay (TLS) installed',
  WORKER_SSH_INSTALL_AGENT: 'Bootstrap: agent installed',
  WORKER_SSH_INSTALL_VLLM: 'Bootstrap: vLLM installed',
  WORKER_SSH_START_AGENT: 'Bootstrap: agent started',
  WORKER_SSH_DONE: 'Bootstrap: done',
  WORKER_MODEL_LOADED: 'Model loaded',
  WORKER_VLLM_HTTP_OK: 'Engine answering',
  WORKER_VLLM_WARMUP: 'Engine warmed up',
  HEALTH_CHECK: 'Health check',
  WORKER_HEARTBEAT_TIMEOUT: 'Worker silent: heartbeats stopped',
  USAGE_DRIFT: 'Metering check',
  USAGE_DRIFT_ALERT: 'Metering drift alert',
  USAGE_DRIFT_CLEARED: 'Metering drift cleared',
  COMMAND_DEAD_LETTER: 'Command given up after retries',
};

/** The step's label in words; an unknown code reads as itself, in lower case words. */
export function stepLabel(actionType: string): string {
  return LABELS[actionType] ?? actionType.toLowerCase().replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}
