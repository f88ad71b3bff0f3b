// The header's organization switcher and "new organization" dialog.
import { useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router';
import { Dialog } from '../components/Dialog';
import { ErrorMessage, Field } from '../components/ui';
import { useMe } from '../auth/useMe';
import { useCreateOrganization, useOrganizations, useSwitchOrganization } from './api';

export function OrgSwitcher() {
  const { data: me } = useMe();
  const { data: orgs } = useOrganizations();
  const switchOrg = useSwitchOrganization();
  const navigate = useNavigate();
  const [creating, setCreating] = useState(false);
  const current = me?.current_organization.id ?? '';
  const list = orgs ?? me?.memberships ?? [];
  return (
    <div className="org-switcher">
      <label htmlFor="org-switcher" className="sr-only">
        Organization
      </label>
      <select
        id="org-switcher"
        value={current}
        disabled={switchOrg.isPending}
        onChange={(e) => switchOrg.mutate(e.target.value, { onSuccess: () => navigate('/') })}
      >
        {list.map((o) => (
          <option key={o.id} value={o.id}>
            {o.name} {o.kind === 'personal' ? '(personal)' : ''} · {o.role}
          </option>
        ))}
      </select>
      <button type="button" className="button" onClick={() => setCreating(true)}>
        New organization
      </button>
      <ErrorMessage error={switchOrg.error} />
      <NewOrganizationDialog open={creating} onClose={() => setCreating(false)} />
    </div>
  );
}

function NewOrganizationDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const create = useCreateOrganization();
  const switchOrg = useSwitchOrganization();
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [slug, setSlug] = useState('');
  const [switchTo, setSwitchTo] = useState(true);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { name: name.trim(), slug: slug.trim() || undefined },
      {
        onSuccess: (org) => {
          setName('');
          setSlug('');
          onClose();
          if (switchTo) switchOrg.mutate(org.id, { onSuccess: () => navigate('/') });
        },
      },
    );
  };
  return (
    <Dialog title="New organization" open={open} onClose={onClose}>
      <form className="form" onSubmit={submit} aria-label="New organization">
        <Field label="Name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} autoFocus />
        <Field
          label="Slug (optional)"
          pattern="[a-z0-9]+(-[a-z0-9]+)*"
          minLength={2}
          maxLength={48}
          value={slug}
          onChange={(e) => setSlug(e.target.value)}
          hint="Lowercase letters, digits and dashes. Derived from the name when empty."
        />
        <label className="checkbox">
          <input type="checkbox" checked={switchTo} onChange={(e) => setSwitchTo(e.target.checked)} /> Switch to it
        </label>
        <ErrorMessage error={create.error} />
        <div className="form-actions">
          <button type="button" className="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button-primary" disabled={create.isPending}>
            Create
          </button>
        </div>
      </form>
    </Dialog>
  );
}
