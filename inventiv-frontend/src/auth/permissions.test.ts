import { assignable, can, canAssign, canRemove } from './permissions';

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
});
