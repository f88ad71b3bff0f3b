// The frame of every logged-in page: sidebar navigation (modules hidden by
// role), the workspace banner, the organization switcher, the live events.
import { createContext, useContext } from 'react';
import { Navigate, NavLink, Outlet, useLocation, useNavigate } from 'react-router';
import { isUnauthenticated } from '../api/client';
import { useLogout } from '../auth/api';
import { can, type Action } from '../auth/permissions';
import { useMe } from '../auth/useMe';
import { ErrorMessage, Loading } from '../components/ui';
import { useLiveEvents, type LiveState } from '../instances/liveEvents';
import { orgColor } from '../organizations/color';
import { OrgSwitcher } from '../organizations/OrgSwitcher';
import { WorkspaceBanner } from '../organizations/WorkspaceBanner';
import { VersionBadge } from './VersionBadge';

const LiveContext = createContext<LiveState>('connecting');

/** The state of the live events connection. */
export function useLiveState(): LiveState {
  return useContext(LiveContext);
}

interface NavItem {
  to: string;
  label: string;
  /** Shown when the role may do any of these. */
  anyOf?: Action[];
}

const NAV: NavItem[] = [
  { to: '/', label: 'Dashboard' },
  { to: '/instances', label: 'Instances' },
  { to: '/playground', label: 'Playground' },
  { to: '/keys', label: 'API keys' },
  { to: '/catalog', label: 'Catalog', anyOf: ['ActivateTechnical', 'ActivateEconomic'] },
  { to: '/members', label: 'Members', anyOf: ['ManageMembers'] },
  { to: '/organization', label: 'Organization' },
];

export function Layout() {
  const me = useMe();
  const location = useLocation();
  const navigate = useNavigate();
  const logout = useLogout();
  const live = useLiveEvents(me.data?.current_organization.id);

  if (me.isPending) return <Loading label="Loading your workspace…" />;
  if (me.isError) {
    if (isUnauthenticated(me.error)) {
      const next = encodeURIComponent(location.pathname + location.search);
      return <Navigate to={`/login?next=${next}`} replace />;
    }
    return (
      <main className="auth-page">
        <ErrorMessage error={me.error} />
        <button type="button" className="button" onClick={() => me.refetch()}>
          Try again
        </button>
      </main>
    );
  }
  const org = me.data.current_organization;
  const role = org.role;
  const color = orgColor(org.sidebar_color);
  return (
    <LiveContext.Provider value={live}>
      <div className="app">
        <a className="skip-link" href="#main">
          Skip to content
        </a>
        <aside className="sidebar" style={{ borderLeftColor: color }}>
          <div className="brand">
            <span className="brand-mark" aria-hidden="true" style={{ background: color }} />
            Inventiv Agents
          </div>
          <nav aria-label="Main">
            <ul>
              {NAV.filter((item) => !item.anyOf || item.anyOf.some((a) => can(role, a))).map((item) => (
                <li key={item.to}>
                  <NavLink to={item.to} end={item.to === '/'}>
                    {item.label}
                  </NavLink>
                </li>
              ))}
            </ul>
          </nav>
          <VersionBadge />
        </aside>
        <div className="main-column">
          <WorkspaceBanner org={org} />
          <header className="topbar">
            <OrgSwitcher />
            <div className="user-menu">
              <span className={`live-dot live-${live}`} role="status" aria-label={`Live updates: ${live}`} title={`Live updates: ${live}`} />
              <span className="muted">{me.data.user.email}</span>
              <button
                type="button"
                className="button"
                onClick={() => logout.mutate(undefined, { onSettled: () => navigate('/login', { replace: true }) })}
              >
                Log out
              </button>
            </div>
          </header>
          <main id="main" className="content" tabIndex={-1}>
            <Outlet />
          </main>
        </div>
      </div>
    </LiveContext.Provider>
  );
}
