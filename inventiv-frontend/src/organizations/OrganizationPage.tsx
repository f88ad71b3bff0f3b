// The current organization: its name and color (owners, admins), its
// system prompts, leaving or deleting it, and its audit log (owners, admins).
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router';
import type { ColumnDef } from '@tanstack/react-table';
import type { AuditLog } from '../api/types';
import { can } from '../auth/permissions';
import { useMe } from '../auth/useMe';
import { DataTable } from '../components/DataTable';
import { Card, DateText, ErrorMessage, Field, Loading, PageHeader } from '../components/ui';
import { useAuditLogs, useDeleteOrganization, useLeaveOrganization, useUpdateOrganization } from './api';
import { DEFAULT_COLOR } from './color';
import { SystemPromptCard } from './SystemPromptCard';

export function OrganizationPage() {
  const { data: me } = useMe();
  if (!me) return null;
  const org = me.current_organization;
  return (
    <>
      <PageHeader title="Organization" />
      <Settings key={org.id} name={org.name} color={org.sidebar_color ?? null} editable={can(org.role, 'UpdateOrganization')} />
      <Card title="Membership">
        <dl className="facts">
          <dt>Slug</dt>
          <dd>
            <code>{org.slug}</code>
          </dd>
          <dt>Kind</dt>
          <dd>{org.kind}</dd>
          <dt>Your role</dt>
          <dd>{org.role}</dd>
        </dl>
        {org.kind === 'team' ? <LeaveOrDelete orgId={org.id} name={org.name} owner={can(org.role, 'DeleteOrganization')} /> : null}
      </Card>
      <SystemPromptCard editable={can(org.role, 'UpdateOrganization')} />
      {can(org.role, 'ViewAuditLog') ? <AuditLogCard /> : null}
    </>
  );
}

function Settings({ name, color, editable }: { name: string; color: string | null; editable: boolean }) {
  const update = useUpdateOrganization();
  const [newName, setNewName] = useState(name);
  const [newColor, setNewColor] = useState(color ?? DEFAULT_COLOR);
  useEffect(() => setNewName(name), [name]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    update.mutate({ name: newName.trim(), sidebar_color: newColor });
  };
  return (
    <Card title="Settings">
      <form className="form form-inline" onSubmit={submit} aria-label="Organization settings">
        <Field label="Name" required maxLength={100} value={newName} disabled={!editable} onChange={(e) => setNewName(e.target.value)} />
        <Field label="Sidebar color" type="color" value={newColor} disabled={!editable} onChange={(e) => setNewColor(e.target.value)} />
        {editable ? (
          <>
            <button type="submit" className="button button-primary" disabled={update.isPending}>
              Save
            </button>
            <button type="button" className="button" disabled={update.isPending} onClick={() => update.mutate({ sidebar_color: null })}>
              Reset color
            </button>
          </>
        ) : (
          <p className="muted">Only owners and admins change these.</p>
        )}
      </form>
      <ErrorMessage error={update.error} />
      {update.isSuccess ? (
        <p className="notice" role="status">
          Saved.
        </p>
      ) : null}
    </Card>
  );
}

function LeaveOrDelete({ orgId, name, owner }: { orgId: string; name: string; owner: boolean }) {
  const leave = useLeaveOrganization();
  const remove = useDeleteOrganization();
  const navigate = useNavigate();
  return (
    <div className="form-actions">
      <button
        type="button"
        className="button"
        onClick={() => {
          if (window.confirm(`Leave ${name}?`)) leave.mutate(undefined, { onSuccess: () => navigate('/') });
        }}
      >
        Leave this organization
      </button>
      {owner ? (
        <button
          type="button"
          className="button button-danger"
          onClick={() => {
            if (window.prompt(`Type the organization's name (${name}) to delete it:`) === name)
              remove.mutate(orgId, { onSuccess: () => navigate('/') });
          }}
        >
          Delete this organization
        </button>
      ) : null}
      <ErrorMessage error={leave.error ?? remove.error} />
    </div>
  );
}

function AuditLogCard() {
  const logs = useAuditLogs(true);
  const columns = useMemo<ColumnDef<AuditLog>[]>(
    () => [
      { id: 'created_at', accessorKey: 'created_at', header: 'When', size: 190, cell: ({ getValue }) => <DateText value={getValue<string>()} /> },
      { id: 'action', accessorKey: 'action', header: 'Action', size: 200 },
      { id: 'actor_email', accessorKey: 'actor_email', header: 'Who', size: 200 },
      { id: 'target_type', accessorKey: 'target_type', header: 'Target', size: 120 },
      { id: 'target_id', accessorKey: 'target_id', header: 'Target id', size: 160 },
      { id: 'request_id', accessorKey: 'request_id', header: 'Request', size: 160 },
    ],
    [],
  );
  return (
    <Card title="Audit log">
      {logs.isPending ? (
        <Loading />
      ) : logs.isError ? (
        <ErrorMessage error={logs.error} />
      ) : (
        <DataTable id="audit-log" label="Audit log" columns={columns} data={logs.data} getRowId={(l) => String(l.id)} />
      )}
    </Card>
  );
}
