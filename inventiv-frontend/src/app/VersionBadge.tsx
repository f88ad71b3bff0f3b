// The dashboard's version and the API's (from its OpenAPI document).
import { useQuery } from '@tanstack/react-query';

async function apiVersion(): Promise<string> {
  const response = await fetch('/openapi.json', { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`openapi.json: ${response.status}`);
  const doc = (await response.json()) as { info?: { version?: string } };
  return doc.info?.version ?? '?';
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
