// The dashboard's version and the API's (from its liveness probe, a few
// bytes, rather than the 100 KB OpenAPI document).
import { useQuery } from '@tanstack/react-query';
import type { Health } from '../api/types';

async function apiVersion(): Promise<string> {
  const response = await fetch('/healthz', { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`healthz: ${response.status}`);
  const health = (await response.json()) as Health;
  return health.version;
}

export function VersionBadge() {
  const { data } = useQuery({ queryKey: ['api-version'], queryFn: apiVersion, staleTime: Infinity, retry: false });
  return (
    <p className="version-badge" aria-label="Versions">
      <span>UI v{__APP_VERSION__}</span>
      <span>API v{data ?? '…'}</span>
    </p>
  );
}
