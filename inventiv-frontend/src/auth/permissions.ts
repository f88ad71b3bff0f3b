// What each organization role may do: a copy of the permission matrix of
// inventiv-common/src/rbac.rs, used only to hide what the API would refuse.
import type { OrgRole } from '../api/types';

export type Action =
  | 'ViewOrganization'
  | 'UpdateOrganization'
  | 'DeleteOrganization'
  | 'ManageMembers'
  | 'ManageInvitations'
  | 'ViewAuditLog'
  | 'ViewCatalog'
  | 'ActivateTechnical'
  | 'ActivateEconomic'
  | 'ViewInstances'
  | 'ManageInstances'
  | 'UseApiKeys'
  | 'ManageAllApiKeys'
  | 'ViewFinOps'
  | 'CloseStatements'
  | 'ViewOfferings'
  | 'PublishOfferings'
  | 'SellOfferings'
  | 'AcceptShares'
  | 'ManageProviders'
  | 'ViewBudgets'
  | 'ManageBudgets'
  | 'ViewHosts'
  | 'ManageHosts';

const ALL: OrgRole[] = ['owner', 'admin', 'manager', 'user'];

const MATRIX: Record<Action, OrgRole[]> = {
  ViewOrganization: ALL,
  UpdateOrganization: ['owner', 'admin'],
  DeleteOrganization: ['owner'],
  ManageMembers: ['owner', 'admin', 'manager'],
  ManageInvitations: ['owner', 'admin', 'manager'],
  ViewAuditLog: ['owner', 'admin'],
  ViewCatalog: ALL,
  ActivateTechnical: ['owner', 'admin'],
  ActivateEconomic: ['owner', 'manager'],
  ViewInstances: ALL,
  ManageInstances: ['owner', 'admin'],
  UseApiKeys: ALL,
  ManageAllApiKeys: ['owner', 'admin'],
  ViewFinOps: ['owner', 'manager'],
  CloseStatements: ['owner'],
  ViewOfferings: ['owner', 'admin', 'manager'],
  PublishOfferings: ['owner', 'admin'],
  SellOfferings: ['owner', 'manager'],
  AcceptShares: ['owner', 'manager'],
  ManageProviders: ['owner', 'admin'],
  ViewBudgets: ['owner', 'admin', 'manager'],
  ManageBudgets: ['owner', 'admin'],
  ViewHosts: ALL,
  ManageHosts: ['owner', 'admin'],
};

export function can(role: OrgRole | undefined, action: Action): boolean {
  return role !== undefined && MATRIX[action].includes(role);
}

/** The roles `actor` may give (to a newcomer or from one of them). */
export function assignable(actor: OrgRole): OrgRole[] {
  switch (actor) {
    case 'owner':
      return ALL;
    case 'admin':
      return ['admin', 'user'];
    case 'manager':
      return ['manager', 'user'];
    default:
      return [];
  }
}

export function canAssign(actor: OrgRole, from: OrgRole | null, to: OrgRole): boolean {
  const allowed = assignable(actor);
  return can(actor, 'ManageMembers') && (from === null || allowed.includes(from)) && allowed.includes(to);
}

export function canRemove(actor: OrgRole, target: OrgRole): boolean {
  return can(actor, 'ManageMembers') && assignable(actor).includes(target);
}
