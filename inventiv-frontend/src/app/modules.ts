// The dashboard's modules and who sees them: by the role in the current
// organization (the permission matrix of auth/permissions.ts), by the kind
// of workspace (a personal one has no members to manage) and, for the
// global catalog, by platform administration. Hidden modules are also
// refused by the API; hiding only spares people buttons that would fail.
import { can, type Action } from '../auth/permissions';
import type { OrgRole } from '../api/types';

export type ModuleId =
  | 'dashboard'
  | 'instances'
  | 'services'
  | 'hosts'
  | 'runtime'
  | 'usage'
  | 'requests'
  | 'playground'
  | 'keys'
  | 'marketplace'
  | 'finops'
  | 'statements'
  | 'budgets'
  | 'offerings'
  | 'catalog'
  | 'members'
  | 'organization'
  | 'providers'
  | 'reconciliation'
  | 'sessions'
  | 'catalog-settings';

export type Section = 'Workspace' | 'Administration' | 'Account' | 'Platform';

export interface Module {
  id: ModuleId;
  to: string;
  label: string;
  section: Section;
  /** Shown when the role may do any of these (always when absent). */
  anyOf?: Action[];
  /** Only in team workspaces. */
  teamOnly?: boolean;
  /** Only for platform admins. */
  platformAdmin?: boolean;
}

export const MODULES: Module[] = [
  { id: 'dashboard', to: '/', label: 'Dashboard', section: 'Workspace' },
  { id: 'instances', to: '/instances', label: 'Instances', section: 'Workspace', anyOf: ['ViewInstances'] },
  { id: 'services', to: '/services', label: 'Services', section: 'Workspace', anyOf: ['ViewInstances'] },
  { id: 'hosts', to: '/hosts', label: 'Hosts', section: 'Workspace', anyOf: ['ViewHosts'] },
  { id: 'runtime', to: '/runtime', label: 'Runtime models', section: 'Workspace', anyOf: ['ViewInstances'] },
  { id: 'usage', to: '/usage', label: 'Usage', section: 'Workspace', anyOf: ['ViewInstances'] },
  { id: 'requests', to: '/requests', label: 'Requests', section: 'Workspace', anyOf: ['ViewInstances'] },
  { id: 'playground', to: '/playground', label: 'Playground', section: 'Workspace', anyOf: ['UseApiKeys'] },
  { id: 'keys', to: '/keys', label: 'API keys', section: 'Workspace', anyOf: ['UseApiKeys'] },
  { id: 'marketplace', to: '/marketplace', label: 'Marketplace', section: 'Workspace' },
  { id: 'finops', to: '/finops', label: 'FinOps', section: 'Administration', anyOf: ['ViewFinOps'] },
  { id: 'statements', to: '/statements', label: 'Statements', section: 'Administration', anyOf: ['ViewFinOps'] },
  { id: 'budgets', to: '/budgets', label: 'Budgets', section: 'Administration', anyOf: ['ViewBudgets'] },
  { id: 'offerings', to: '/offerings', label: 'Offerings', section: 'Administration', anyOf: ['ViewOfferings'] },
  { id: 'catalog', to: '/catalog', label: 'Catalog', section: 'Administration', anyOf: ['ActivateTechnical', 'ActivateEconomic'] },
  { id: 'members', to: '/members', label: 'Members', section: 'Administration', anyOf: ['ManageMembers'], teamOnly: true },
  { id: 'providers', to: '/settings/providers', label: 'Providers', section: 'Administration', anyOf: ['ManageProviders'] },
  { id: 'reconciliation', to: '/reconciliation', label: 'Reconciliation', section: 'Administration', anyOf: ['ManageProviders'] },
  { id: 'organization', to: '/organization', label: 'Organization', section: 'Administration', anyOf: ['ViewOrganization'] },
  { id: 'sessions', to: '/sessions', label: 'Sessions', section: 'Account' },
  { id: 'catalog-settings', to: '/settings/catalog', label: 'Catalog settings', section: 'Platform', platformAdmin: true },
];

export interface Viewer {
  role: OrgRole | undefined;
  /** `personal` or `team`. */
  kind: string | undefined;
  isPlatformAdmin: boolean;
}

export function isVisible(module: Module, viewer: Viewer): boolean {
  if (module.platformAdmin && !viewer.isPlatformAdmin) return false;
  if (module.teamOnly && viewer.kind !== 'team') return false;
  return !module.anyOf || module.anyOf.some((a) => can(viewer.role, a));
}

/** The visible modules, grouped by section in menu order (empty sections left out). */
export function navigation(viewer: Viewer): { section: Section; modules: Module[] }[] {
  const sections: Section[] = ['Workspace', 'Administration', 'Account', 'Platform'];
  return sections
    .map((section) => ({ section, modules: MODULES.filter((m) => m.section === section && isVisible(m, viewer)) }))
    .filter((s) => s.modules.length > 0);
}

export function moduleById(id: ModuleId): Module {
  const found = MODULES.find((m) => m.id === id);
  if (!found) throw new Error(`unknown module ${id}`);
  return found;
}
