// The instance's metering reconciled with its engines' own token counters.
import type { UsageReconciliation } from '../api/types';
import { Badge, Card, DateText, Empty } from '../components/ui';
import { driftView } from './usageDrift';

export function UsageDriftCard({ reconciliation }: { reconciliation: UsageReconciliation | null | undefined }) {
  const view = driftView(reconciliation);
  return (
    <Card title="Metering check">
      {view && reconciliation ? (
        <dl className="facts">
          <dt>Status</dt>
          <dd>
            <Badge tone={view.tone}>{view.label}</Badge>
          </dd>
          <dt>Drift</dt>
          <dd>{view.drift}</dd>
          <dt>Engines counted</dt>
          <dd>{view.engine}</dd>
          <dt>Proxy metered</dt>
          <dd>{view.proxy}</dd>
          <dt>Window</dt>
          <dd>{view.window}</dd>
          <dt>Checked</dt>
          <dd>
            <DateText value={reconciliation.checked_at} />
          </dd>
        </dl>
      ) : (
        <Empty>No engine counters reconciled yet.</Empty>
      )}
    </Card>
  );
}
