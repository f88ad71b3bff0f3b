// The caller's sessions (GET /auth/sessions): where and when they logged
// in; any other session can be revoked, its tokens stop working at once.
import { useMemo } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { api } from '../api/client';
import type { Session } from '../api/types';
import { DataTable } from '../components/DataTable';
import type { Tone } from '../components/statusTones';
import { Badge, Card, DateText, ErrorMessage, Loading, PageHeader } from '../components/ui';

const sessionsKey = ['sessions'] as const;

/** Where a session stands, derived from its timestamps (the API sends no status). */
export type SessionStatus = 'active' | 'revoked' | 'expired';

const sessionTone: Record<SessionStatus, Tone> = { active: 'ok', revoked: 'off', expired: 'off' };

/** `active`, `revoked` or `expired`, as the list shows it. */
export function sessionStatus(s: Pick<Session, 'revoked_at' | 'expires_at'>, now = Date.now()): SessionStatus {
  if (s.revoked_at) return 'revoked';
  return new Date(s.expires_at).getTime() <= now ? 'expired' : 'active';
}

export function SessionsPage() {
  const client = useQueryClient();
  const sessions = useQuery({ queryKey: sessionsKey, queryFn: () => api<Session[]>('/auth/sessions') });
  const revoke = useMutation({
    mutationFn: (id: string) => api<void>(`/auth/sessions/${id}/revoke`, { method: 'POST' }),
    onSuccess: () => client.invalidateQueries({ queryKey: sessionsKey }),
  });
  const columns = useMemo<ColumnDef<Session>[]>(
    () => [
      { id: 'organization', accessorKey: 'organization_name', header: 'Workspace', size: 180 },
      { id: 'status', accessorFn: (s) => sessionStatus(s), header: 'Status', size: 110, cell: ({ row }) => (
        <>
          <Badge tone={sessionTone[sessionStatus(row.original)]}>{sessionStatus(row.original)}</Badge> {row.original.is_current ? <Badge tone="ok">this browser</Badge> : null}
        </>
      ) },
      { id: 'ip', accessorFn: (s) => s.ip ?? '', header: 'IP', size: 130 },
      { id: 'user_agent', accessorFn: (s) => s.user_agent ?? '', header: 'Browser', size: 260 },
      { id: 'created_at', accessorKey: 'created_at', header: 'Logged in', size: 190, cell: ({ row }) => <DateText value={row.original.created_at} /> },
      { id: 'last_seen_at', accessorKey: 'last_seen_at', header: 'Last seen', size: 190, cell: ({ row }) => <DateText value={row.original.last_seen_at} /> },
      {
        id: 'actions',
        header: 'Actions',
        size: 120,
        enableSorting: false,
        cell: ({ row }) =>
          row.original.is_current || sessionStatus(row.original) !== 'active' ? null : (
            <button
              type="button"
              className="button button-danger"
              aria-label={`Revoke the session from ${row.original.ip ?? 'an unknown address'} created ${row.original.created_at}`}
              disabled={revoke.isPending}
              onClick={() => {
                const where = row.original.ip ?? 'an unknown address';
                if (window.confirm(`Revoke the session from ${where}? Whoever uses it is signed out at once.`)) revoke.mutate(row.original.id);
              }}
            >
              Revoke
            </button>
          ),
      },
    ],
    [revoke],
  );
  return (
    <>
      <PageHeader title="Sessions" />
      <p className="muted">Every login opens a session. Revoke the ones you do not recognise; log out to end this one.</p>
      <ErrorMessage error={revoke.error} />
      <Card title="Your sessions">
        {sessions.isPending ? <Loading /> : sessions.isError ? <ErrorMessage error={sessions.error} /> : (
          <DataTable id="sessions" label="Sessions" columns={columns} data={sessions.data} getRowId={(s) => s.id} />
        )}
      </Card>
    </>
  );
}
