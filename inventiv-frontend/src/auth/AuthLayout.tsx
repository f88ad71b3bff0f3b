// The frame of the pages seen logged out (login, reset, invitation).
import type { ReactNode } from 'react';
import { VersionBadge } from '../app/VersionBadge';

export function AuthLayout({ title, children }: { title: string; children: ReactNode }) {
  return (
    <div className="auth-page">
      <main className="auth-card" id="main">
        <div className="brand brand-large">
          <span className="brand-mark" aria-hidden="true" />
          Inventiv Agents
        </div>
        <h1>{title}</h1>
        {children}
      </main>
      <VersionBadge />
    </div>
  );
}
