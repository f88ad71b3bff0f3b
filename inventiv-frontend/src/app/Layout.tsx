// The frame of every logged-in page: sidebar navigation (modules hidden by
// role), the workspace banner, the organization switcher, the spend rate
// (FinOps roles), the live events.
// On a narrow screen (styles.css, ≤ 900 px) the sidebar is a drawer opened
// by the top bar's menu button, so the page's content comes first.
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { Navigate, NavLink, Outlet, useLocation, useNavigate } from 'react-router';
import { isUnauthenticated } from '../api/client';
import { clearAccessToken, maybeSignedIn } from '../api/session';
import { useLogout } from '../auth/api';
import { useMe } from '../auth/useMe';
import { ErrorMessage, Loading, PageHeader } from '../components/ui';
import { SpendRate } from '../finops/SpendRate';
import { defaultEventSource, useLiveEvents, type LiveState } from '../instances/liveEvents';
import { orgColor } from '../organizations/color';
import { OrgSwitcher } from '../organizations/OrgSwitcher';
import { WorkspaceBanner } from '../organizations/WorkspaceBanner';
import { isVisible, moduleById, navigation, type ModuleId, type Viewer } from './modules';
import { Toasts, useToasts } from './Toasts';
import { VersionBadge } from './VersionBadge';

const LiveContext = createContext<LiveState>('connecting');

/** The state of the live events connection. */
export function useLiveState(): LiveState {
  return useContext(LiveContext);
}

/** Who is looking, for the module rules of modules.ts. */
export function useViewer(): Viewer {
  const { data } = useMe();
  return { role: data?.current_organization.role, kind: data?.current_organization.kind, isPlatformAdmin: data?.user.is_platform_admin ?? false };
}

/** A module's page, or a short refusal when the viewer may not see it (an address typed by hand). */
export function Guard({ module, children }: { module: ModuleId; children: ReactNode }) {
  const viewer = useViewer();
  const m = moduleById(module);
  if (isVisible(m, viewer)) return children;
  return (
    <>
      <PageHeader title={m.label} />
      <p role="alert">This module is not available to you in this workspace.</p>
    </>
  );
}

export function Layout() {
  const me = useMe();
  const location = useLocation();
  const navigate = useNavigate();
  const logout = useLogout();
  const { toasts, push, dismiss } = useToasts();
  const live = useLiveEvents(me.data?.current_organization.id, defaultEventSource, push);
  const viewer = useViewer();
  const [drawer, setDrawer] = useState(false);

  // A followed link closes the drawer; so does Escape.
  useEffect(() => setDrawer(false), [location.pathname]);
  useEffect(() => {
    if (!drawer) return undefined;
    const onKey = (e: globalThis.KeyboardEvent) => {
      if (e.key === 'Escape') setDrawer(false);
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [drawer]);

  const unauthenticated = !maybeSignedIn() || (me.isError && isUnauthenticated(me.error));
  useEffect(() => {
    if (me.isError && isUnauthenticated(me.error)) clearAccessToken();
  }, [me.isError, me.error]);

  if (unauthenticated) {
    const next = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/login?next=${next}`} replace />;
  }
  if (me.isPending) return <Loading label="Loading your workspace…" />;
  if (me.isError) {
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
  const color = orgColor(org.sidebar_color);
  return (
    <LiveContext.Provider value={live}>
      <div className={drawer ? 'app drawer-open' : 'app'}>
        <a className="skip-link" href="#main">
          Skip to content
        </a>
        <aside id="sidebar" className="sidebar" style={{ borderLeftColor: color }}>
          <div className="brand">
            <span className="brand-mark" aria-hidden="true" style={{ background: color }} />
            Inventiv Agents
            <button type="button" className="icon-button drawer-close" aria-label="Close the menu" onClick={() => setDrawer(false)}>
              ×
            </button>
          </div>
          <nav aria-label="Main">
            {navigation(viewer).map(({ section, modules }) => (
              <div key={section} className="nav-section" role="group" aria-labelledby={`nav-${section}`}>
                <h2 id={`nav-${section}`} className="nav-heading">
                  {section}
                </h2>
                <ul>
                  {modules.map((m) => (
                    <li key={m.id}>
                      <NavLink to={m.to} end={m.to === '/'}>
                        {m.label}
                      </NavLink>
                    </li>
                  ))}
                </ul>
              </div>
            ))}
          </nav>
          <VersionBadge />
        </aside>
        {drawer ? <div className="drawer-backdrop" aria-hidden="true" onClick={() => setDrawer(false)} /> : null}
        <div className="main-column">
          <WorkspaceBanner org={org} />
          <header className="topbar">
            <button
              type="button"
              className="button menu-button"
              aria-controls="sidebar"
              aria-expanded={drawer}
              onClick={() => setDrawer((open) => !open)}
            >
              <span aria-hidden="true">☰</span> Menu
            </button>
            <OrgSwitcher />
            <SpendRate />
            <div className="user-menu">
              <span className={`live-dot live-${live}`} role="status" aria-label={`Live updates: ${live}`} title={`Live updates: ${live}`} />
              <span className="muted user-email">{me.data.user.email}</span>
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
        <Toasts toasts={toasts} dismiss={dismiss} />
      </div>
    </LiveContext.Provider>
  );
}
