// The Rust source itself (vite.config.ts allows reading it): the copy cannot drift unnoticed.
import rust from '../../../inventiv-common/src/rbac.rs?raw';
import { assignable, can, canAssign, canRemove, type Action } from './permissions';
import type { OrgRole } from '../api/types';

describe('permissions (mirror of inventiv-common rbac.rs)', () => {
  it('hides admin modules from users', () => {
    for (const action of ['ManageMembers', 'ManageInvitations', 'ActivateTechnical', 'ActivateEconomic', 'ManageInstances'] as const) {
      expect(can('user', action)).toBe(false);
      expect(can('owner', action)).toBe(true);
    }
    expect(can('user', 'UseApiKeys')).toBe(true);
    expect(can(undefined, 'ViewInstances')).toBe(false);
  });

  it('follows the assignment rules of the API', () => {
    expect(assignable('admin')).toEqual(['admin', 'user']);
    expect(canAssign('admin', 'user', 'manager')).toBe(false);
    expect(canAssign('manager', 'user', 'manager')).toBe(true);
    expect(canAssign('manager', null, 'admin')).toBe(false);
    expect(canRemove('admin', 'manager')).toBe(false);
    expect(canRemove('owner', 'owner')).toBe(true);
  });

  it('is the same matrix as inventiv-common/src/rbac.rs, row for row', () => {
    const start = rust.indexOf('= &[', rust.indexOf('const MATRIX'));
    const table = rust.slice(start, rust.indexOf('];', start));
    const rows = [...table.matchAll(/\((\w+), &\[([\w, ]*)\]\)/g)];
    expect(rows.length).toBeGreaterThanOrEqual(18);
    const roles: OrgRole[] = ['owner', 'admin', 'manager', 'user'];
    for (const [, action, allowed] of rows) {
      const rustRoles = (allowed ?? '').split(',').map((r: string) => r.trim().toLowerCase()).filter(Boolean);
      expect({ action, roles: roles.filter((r) => can(r, action as Action)) }).toEqual({ action, roles: rustRoles });
    }
  });
});
