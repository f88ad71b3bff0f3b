import { describe, expect, it } from 'vitest';
import { MODULES, isVisible, navigation, type Viewer } from './modules';

const labels = (viewer: Viewer) => navigation(viewer).flatMap((s) => s.modules.map((m) => m.label));
const team = (role: Viewer['role'], isPlatformAdmin = false): Viewer => ({ role, kind: 'team', isPlatformAdmin });

describe('modules by role and workspace', () => {
  it('an owner of a team sees every organization module, not the platform one', () => {
    expect(labels(team('owner'))).toEqual([
      'Dashboard', 'Instances', 'Services', 'Hosts', 'Runtime models', 'Usage', 'Requests', 'Playground', 'API keys', 'Marketplace',
      'FinOps', 'Statements', 'Budgets', 'Offerings', 'Catalog', 'Members', 'Providers', 'Reconciliation', 'Organization', 'Sessions',
    ]);
  });
  it('a user sees no administration module but the organization page', () => {
    const seen = labels(team('user'));
    expect(seen).not.toContain('Members');
    expect(seen).not.toContain('Catalog');
    expect(seen).not.toContain('Catalog settings');
    expect(seen).toContain('Instances');
    expect(seen).toContain('Services');
    expect(seen).toContain('Hosts');
    expect(seen).toContain('Sessions');
  });
  it('a manager activates (catalog) and manages members; an admin too', () => {
    expect(labels(team('manager'))).toEqual(expect.arrayContaining(['Catalog', 'Members']));
    expect(labels(team('admin'))).toEqual(expect.arrayContaining(['Catalog', 'Members']));
  });
  it('a personal workspace has no members module, even for its owner', () => {
    expect(labels({ role: 'owner', kind: 'personal', isPlatformAdmin: false })).not.toContain('Members');
  });
  it('the catalog settings are for platform admins only, whatever the role', () => {
    expect(labels(team('user', true))).toContain('Catalog settings');
    expect(navigation(team('user', true)).at(-1)?.section).toBe('Platform');
    expect(labels(team('owner'))).not.toContain('Catalog settings');
  });
  it('nothing but public-to-members modules without a role', () => {
    const none: Viewer = { role: undefined, kind: 'team', isPlatformAdmin: false };
    expect(MODULES.filter((m) => isVisible(m, none)).map((m) => m.id)).toEqual(['dashboard', 'marketplace', 'sessions']);
  });
  it('money (FinOps, statements) for owners and managers; offerings also for admins; the marketplace for all', () => {
    expect(labels(team('manager'))).toEqual(expect.arrayContaining(['FinOps', 'Statements', 'Offerings', 'Marketplace']));
    expect(labels(team('admin'))).toContain('Offerings');
    expect(labels(team('admin'))).not.toContain('FinOps');
    expect(labels(team('admin'))).not.toContain('Statements');
    const user = labels(team('user'));
    expect(user).toContain('Marketplace');
    for (const hidden of ['FinOps', 'Statements', 'Offerings']) expect(user).not.toContain(hidden);
  });
  it('provider credentials and reconciliation for owners and admins only (ManageProviders)', () => {
    for (const role of ['owner', 'admin'] as const) expect(labels(team(role))).toEqual(expect.arrayContaining(['Providers', 'Reconciliation']));
    for (const role of ['manager', 'user'] as const) {
      expect(labels(team(role))).not.toContain('Providers');
      expect(labels(team(role))).not.toContain('Reconciliation');
    }
  });
});
