// A band in the organization's color saying which workspace is current, so
// nobody deploys into the wrong one.
import type { Membership } from '../api/types';
import { orgColor, textOn } from './color';

export function WorkspaceBanner({ org }: { org: Membership }) {
  const background = orgColor(org.sidebar_color);
  return (
    <div className="workspace-banner" style={{ background, color: textOn(background) }} role="note" aria-label="Current workspace">
      Workspace: <strong>{org.name}</strong>
      <span className="workspace-meta">
        {org.kind === 'personal' ? 'personal' : 'team'} · your role: {org.role}
      </span>
    </div>
  );
}
