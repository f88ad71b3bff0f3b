// The consumer side of sharing: the offerings available to the current
// organization (public ones and those shared with it), accepted by a
// manager before its keys may call them, and the organization's discovery
// preferences (hide public offerings, hide paid ones). A provider's price
// increase reaches an accepted offering after the notice period, or at once
// when the manager accepts it again; the cap the organization set is shown.
// A manager may leave an accepted offering (after a confirmation saying what
// stops): its keys' calls are refused from then on.
import { useMemo, useState } from 'react';
import type { ColumnDef } from '@tanstack/react-table';
import type { Available } from '../api/types';
import { useCan } from '../auth/useMe';
import { CopyButton } from '../components/CopyButton';
import { DataTable } from '../components/DataTable';
import { Dialog } from '../components/Dialog';
import { Badge, Card, Empty, ErrorMessage, Loading, PageHeader, StatusBadge } from '../components/ui';
import { useAcceptOffering, useAvailableOfferings, useLeaveOffering, usePreferences, useSetPreferences } from './api';
import { Prices } from './Prices';

/** What the marketplace's search box looks in. */
const availableText = (a: Available) => `${a.address} ${a.provider_org_slug} ${a.visibility} ${a.accepted ? 'accepted' : 'not accepted'}`;

export function MarketplacePage() {
  const canAccept = useCan('AcceptShares');
  const available = useAvailableOfferings({});
  const accept = useAcceptOffering();
  const [accepting, setAccepting] = useState<Available | null>(null);
  const [confirming, setConfirming] = useState<Available | null>(null);
  const leave = useLeaveOffering();
  const [leaving, setLeaving] = useState<Available | null>(null);
  const columns = useMemo<ColumnDef<Available>[]>(
    () => [
      {
        id: 'address',
        accessorKey: 'address',
        header: 'Model address',
        size: 300,
        cell: ({ row }) => (
          <span className="copy-cell">
            <code title={row.original.address}>{row.original.address}</code>
            <CopyButton text={row.original.address} />
          </span>
        ),
      },
      { id: 'provider', accessorKey: 'provider_org_slug', header: 'Provider', size: 160 },
      { id: 'visibility', accessorKey: 'visibility', header: 'Visibility', size: 110 },
      {
        id: 'price',
        header: 'EUR per 1k / 1M tokens',
        size: 300,
        accessorFn: (a) => Number(a.input_eur_per_1k ?? 0),
        cell: ({ row }) => {
          const a = row.original;
          return (
            <>
              <Prices input={a.input_eur_per_1k} output={a.output_eur_per_1k} />
              {announcedRaise(a) ? (
                <div className="muted">
                  announced: <Prices input={a.announced_input_eur_per_1k} output={a.announced_output_eur_per_1k} />
                </div>
              ) : null}
              {a.max_input_eur_per_1k ? (
                <div className="muted">
                  at most: <Prices input={a.max_input_eur_per_1k} output={a.max_output_eur_per_1k} />
                </div>
              ) : null}
            </>
          );
        },
      },
      {
        id: 'status',
        header: 'Status',
        size: 130,
        accessorFn: (a) => (a.accepted ? a.share_status ?? 'active' : 'pending'),
        cell: ({ row }) =>
          row.original.accepted ? <StatusBadge kind="share" status={row.original.share_status ?? 'active'} /> : <Badge tone="off">not accepted</Badge>,
      },
      {
        id: 'serving',
        header: 'Serving',
        size: 150,
        accessorFn: (a) => a.serving,
        cell: ({ row }) => (row.original.serving ? <Badge tone="ok">serving</Badge> : <Badge tone="warn">no instance</Badge>),
      },
      {
        id: 'actions',
        header: 'Actions',
        size: 170,
        enableSorting: false,
        cell: ({ row }) =>
          canAccept ? (
            <span className="row-actions">
              {!row.original.accepted || announcedRaise(row.original) ? (
                <button
                  type="button"
                  className="button button-small button-primary"
                  disabled={accept.isPending}
                  aria-label={`Accept ${row.original.address}`}
                  onClick={() => setConfirming(row.original)}
                >
                  {row.original.accepted ? 'Accept new price' : 'Accept'}
                </button>
              ) : null}
              {row.original.accepted ? (
                <button
                  type="button"
                  className="button button-small button-danger"
                  disabled={leave.isPending}
                  aria-label={`Leave ${row.original.address}`}
                  onClick={() => {
                    leave.reset();
                    setLeaving(row.original);
                  }}
                >
                  Leave
                </button>
              ) : null}
            </span>
          ) : null,
      },
    ],
    [canAccept, accept, leave],
  );
  return (
    <>
      <PageHeader title="Marketplace" />
      <DiscoveryPreferences />
      <Card title="Offerings available to this organization">
        <p className="muted">
          Call an accepted offering on <code>/v1</code> with this organization&apos;s keys, using its address as the model; each call is charged per token
          at the price shown.
        </p>
        {accept.isError ? (
          <p className="error" role="alert">
            {accepting?.address}: {accept.error.message}
          </p>
        ) : null}
        {available.isPending ? <Loading /> : available.isError ? <ErrorMessage error={available.error} /> : available.data.length === 0 ? (
          <Empty>Nothing is offered to this organization (or the discovery preferences hide it).</Empty>
        ) : (
          <DataTable
            id="available-offerings"
            label="Available offerings"
            columns={columns}
            data={available.data}
            getRowId={(a) => a.offering_id}
            searchText={availableText}
            pageSize={25}
          />
        )}
      </Card>
      <Dialog title={leaving ? `Leave ${leaving.address}?` : 'Leave'} open={leaving !== null} onClose={() => setLeaving(null)}>
        {leaving ? (
          <div className="form">
            <ul className="consequences">
              <li>
                Calls of <code>{leaving.address}</code> with this organization&apos;s keys are refused from now on (<code>model_not_found</code>), and
                nothing more is charged.
              </li>
              <li>What was already used stays on the statements.</li>
              <li>While {leaving.provider_org_slug} offers it, a manager may accept it again, at the price then in force.</li>
            </ul>
            <ErrorMessage error={leave.error} />
            <div className="form-actions">
              <button type="button" className="button" onClick={() => setLeaving(null)}>
                Cancel
              </button>
              <button
                type="button"
                className="button button-danger"
                disabled={leave.isPending}
                onClick={() => leave.mutate(leaving.offering_id, { onSuccess: () => setLeaving(null) })}
              >
                Yes, leave it
              </button>
            </div>
          </div>
        ) : null}
      </Dialog>
      <Dialog title={confirming ? `Accept ${confirming.address}?` : 'Accept'} open={confirming !== null} onClose={() => setConfirming(null)}>
        {confirming ? (
          <AcceptConfirmation
            offering={confirming}
            busy={accept.isPending}
            onCancel={() => setConfirming(null)}
            onConfirm={() => {
              setAccepting(confirming);
              accept.mutate(confirming.offering_id, { onSettled: () => setConfirming(null) });
            }}
          />
        ) : null}
      </Dialog>
    </>
  );
}

/** What accepting agrees to: the price each call is charged (the announced one, which acceptance applies at once). */
function AcceptConfirmation({ offering, busy, onCancel, onConfirm }: { offering: Available; busy: boolean; onCancel: () => void; onConfirm: () => void }) {
  const input = offering.announced_input_eur_per_1k ?? offering.input_eur_per_1k;
  const output = offering.announced_output_eur_per_1k ?? offering.output_eur_per_1k;
  const free = !input || !output;
  return (
    <div className="form">
      <p>
        {free ? (
          <>
            <strong>Free:</strong> this organization&apos;s keys may call <code>{offering.address}</code> without charge.
          </>
        ) : (
          <>
            Every call of <code>{offering.address}</code> with this organization&apos;s keys is charged per token, in EUR:{' '}
            <strong>
              <Prices input={input} output={output} cached={input === offering.input_eur_per_1k ? offering.cached_input_eur_per_1k : null} />
            </strong>
            .
          </>
        )}
      </p>
      {offering.accepted ? <p className="muted">This applies the price {offering.provider_org_slug} announced now, without waiting for its notice period.</p> : null}
      {offering.max_input_eur_per_1k ? (
        <p className="muted">
          The maximum this organization set stays in force: <Prices input={offering.max_input_eur_per_1k} output={offering.max_output_eur_per_1k} />.
        </p>
      ) : null}
      <div className="form-actions">
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="button" className="button button-primary" disabled={busy} onClick={onConfirm}>
          {free ? 'Accept' : 'Accept this price'}
        </button>
      </div>
    </div>
  );
}

function DiscoveryPreferences() {
  const preferences = usePreferences();
  const set = useSetPreferences();
  const canSet = useCan('AcceptShares');
  if (preferences.isPending) return <Loading />;
  if (preferences.isError) return <ErrorMessage error={preferences.error} />;
  const p = preferences.data;
  const toggle = (field: 'hide_public' | 'hide_paid', label: string) => (
    <label className="checkbox">
      <input
        type="checkbox"
        role="switch"
        checked={p[field]}
        disabled={!canSet || set.isPending}
        onChange={(e) => set.mutate({ ...p, [field]: e.target.checked })}
      />{' '}
      {label}
    </label>
  );
  return (
    <Card title="Discovery preferences">
      <div className="filters">
        {toggle('hide_public', 'Hide public offerings')}
        {toggle('hide_paid', 'Hide paid offerings')}
      </div>
      <ErrorMessage error={set.error} />
    </Card>
  );
}

/** An accepted offering whose provider announced a price it does not pay yet (notice period). */
function announcedRaise(a: Available): boolean {
  return a.accepted && (a.announced_input_eur_per_1k !== a.input_eur_per_1k || a.announced_output_eur_per_1k !== a.output_eur_per_1k);
}
