// Members and invitations of the current organization (owners, admins,
// managers), each change bounded by the caller's own role.
import { useMemo, useState, type FormEvent } from 'react';
import type { ColumnDef } from '@tanstack/react-table';
import type { Invitation, Member, OrgRole } from '../api/types';
import { assignable, can, canAssign, canRemove } from '../auth/permissions';
import { useMe } from '../auth/useMe';
import { DataTable } from '../components/DataTable';
import { Card, DateText, ErrorMessage, Field, Loading, PageHeader, SelectField, StatusBadge } from '../components/ui';
import { useChangeRole, useInvitations, useInvite, useMembers, useRemoveMember, useRevokeInvitation } from './api';

const ROLES: OrgRole[] = ['owner', 'admin', 'manager', 'user'];

/** What a role change does, asked before it is made. */
export function roleChangeQuestion(email: string, from: OrgRole, to: OrgRole): string {
  const what: Record<OrgRole, string> = {
    owner: 'everything, the organization and its owners included',
    admin: 'members, keys, providers, hosts and deployments',
    manager: 'the money: budgets, prices, economic activations, statements',
    user: 'nothing; they use the models with their own keys',
  };
  return `Make ${email} ${to} instead of ${from}? They will manage ${what[to]}.`;
}

export function MembersPage() {
  const { data: me } = useMe();
  const role = me?.current_organization.role ?? 'user';
  const personal = me?.current_organization.kind === 'personal';
  const members = useMembers();
  const invitations = useInvitations(can(role, 'ManageInvitations'));
  if (!can(role, 'ManageMembers')) {
    return (
      <>
        <PageHeader title="Members" />
        <p>Your role ({role}) does not manage members.</p>
      </>
    );
  }
  return (
    <>
      <PageHeader title="Members" />
      <Card title="Members">
        {members.isPending ? <Loading /> : members.isError ? <ErrorMessage error={members.error} /> : <MembersTable members={members.data} actor={role} me={me?.user.id} />}
      </Card>
      <Card title="Invitations">
        {personal ? (
          <p className="muted">A personal organization cannot invite anyone: create a team organization to work with others.</p>
        ) : (
          <InviteForm actor={role} />
        )}
        {invitations.isPending ? (
          <Loading />
        ) : invitations.isError ? (
          <ErrorMessage error={invitations.error} />
        ) : (
          <InvitationsTable invitations={invitations.data} />
        )}
      </Card>
    </>
  );
}

function MembersTable({ members, actor, me }: { members: Member[]; actor: OrgRole; me?: string }) {
  const changeRole = useChangeRole();
  const remove = useRemoveMember();
  const columns = useMemo<ColumnDef<Member>[]>(
    () => [
      { id: 'display_name', accessorKey: 'display_name', header: 'Name' },
      { id: 'email', accessorKey: 'email', header: 'E-mail', size: 220 },
      {
        id: 'role',
        accessorKey: 'role',
        header: 'Role',
        cell: ({ row }) => {
          const m = row.original;
          const options = ROLES.filter((r) => r === m.role || canAssign(actor, m.role, r));
          if (options.length <= 1) return m.role;
          return (
            <select
              aria-label={`Role of ${m.email}`}
              value={m.role}
              disabled={changeRole.isPending}
              onChange={(e) => {
                const role = e.target.value as OrgRole;
                if (window.confirm(roleChangeQuestion(m.email, m.role, role))) changeRole.mutate({ userId: m.user_id, role });
              }}
            >
              {options.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          );
        },
      },
      { id: 'joined_at', accessorKey: 'joined_at', header: 'Joined', size: 190, cell: ({ getValue }) => <DateText value={getValue<string>()} /> },
      {
        id: 'actions',
        header: 'Actions',
        enableSorting: false,
        cell: ({ row }) => {
          const m = row.original;
          if (m.user_id === me || !canRemove(actor, m.role)) return null;
          return (
            <button
              type="button"
              className="button button-danger button-small"
              onClick={() => {
                if (window.confirm(`Remove ${m.email} from the organization?`)) remove.mutate(m.user_id);
              }}
            >
              Remove
            </button>
          );
        },
      },
    ],
    [actor, me, changeRole, remove],
  );
  return (
    <>
      <ErrorMessage error={changeRole.error ?? remove.error} />
      <DataTable id="members" label="Members" columns={columns} data={members} getRowId={(m) => m.user_id} />
    </>
  );
}

function InviteForm({ actor }: { actor: OrgRole }) {
  const invite = useInvite();
  const roles = assignable(actor);
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<OrgRole>(roles.includes('user') ? 'user' : (roles[0] ?? 'user'));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    invite.mutate({ email, role }, { onSuccess: () => setEmail('') });
  };
  return (
    <form className="form form-inline" onSubmit={submit} aria-label="Invite someone">
      <Field label="E-mail to invite" type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
      <SelectField label="Role" value={role} onChange={(e) => setRole(e.target.value as OrgRole)}>
        {roles.map((r) => (
          <option key={r} value={r}>
            {r}
          </option>
        ))}
      </SelectField>
      <button type="submit" className="button button-primary" disabled={invite.isPending}>
        Invite
      </button>
      <ErrorMessage error={invite.error} />
      {invite.isSuccess ? (
        <p className="notice" role="status">
          Invitation sent to {invite.data.email}.
        </p>
      ) : null}
    </form>
  );
}

function InvitationsTable({ invitations }: { invitations: Invitation[] }) {
  const revoke = useRevokeInvitation();
  const columns = useMemo<ColumnDef<Invitation>[]>(
    () => [
      { id: 'email', accessorKey: 'email', header: 'E-mail', size: 220 },
      { id: 'role', accessorKey: 'role', header: 'Role', size: 100 },
      { id: 'status', accessorKey: 'status', header: 'Status', size: 110, cell: ({ row }) => <StatusBadge kind="invitation" status={row.original.status} /> },
      { id: 'created_at', accessorKey: 'created_at', header: 'Sent', size: 190, cell: ({ getValue }) => <DateText value={getValue<string>()} /> },
      { id: 'expires_at', accessorKey: 'expires_at', header: 'Expires', size: 190, cell: ({ getValue }) => <DateText value={getValue<string>()} /> },
      {
        id: 'actions',
        header: 'Actions',
        enableSorting: false,
        cell: ({ row }) =>
          row.original.status === 'pending' ? (
            <button
              type="button"
              className="button button-small"
              onClick={() => {
                if (window.confirm(`Revoke the invitation of ${row.original.email}?`)) revoke.mutate(row.original.id);
              }}
            >
              Revoke
            </button>
          ) : null,
      },
    ],
    [revoke],
  );
  return (
    <>
      <ErrorMessage error={revoke.error} />
      <DataTable id="invitations" label="Invitations" columns={columns} data={invitations} getRowId={(i) => i.id} empty="No invitation." />
    </>
  );
}
