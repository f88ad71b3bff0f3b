// The provider side of sharing: publish a model the organization serves as
// an offering (`org_slug/model_code`), switch it on technically (owners,
// admins) and economically (owners, managers), price it with new versions,
// and share it with other organizations (pause, resume, revoke).
import { useMemo, useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { api } from '../api/client';
import type { Offering, RuntimeModel, Share, ShareStatus } from '../api/types';
import { useCan, useMe } from '../auth/useMe';
import { DataTable } from '../components/DataTable';
import { Dialog } from '../components/Dialog';
import { Badge, Card, DateText, Empty, ErrorMessage, Field, Loading, Money, PageHeader, SelectField, StatusBadge } from '../components/ui';
import { useCostRecovery } from '../finops/api';
import { Margin } from '../finops/Margin';
import { PromptForm, promptOf, useSystemPrompts } from '../organizations/SystemPromptCard';
import { parsePrice, perMillionHint, priceError } from './prices';
import { Prices } from './Prices';
import { useCreateShare, useNewPrice, useOfferings, usePublishOffering, useShares, useUpdateOffering, useUpdateShare } from './api';

export const VISIBILITIES = ['private', 'unlisted', 'public'] as const;

/** What the offerings' search box looks in. */
const offeringText = (o: Offering) => `${o.address} ${o.visibility} ${o.serving ? 'serving' : 'no instance'}`;

const shareText = (s: Share) => `${s.consumer_org_slug} ${s.status}`;

export function OfferingsPage() {
  const offerings = useOfferings();
  const canPublish = useCan('PublishOfferings');
  const canSell = useCan('SellOfferings');
  const update = useUpdateOffering();
  const [publishing, setPublishing] = useState(false);
  const [pricing, setPricing] = useState<Offering | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const current = offerings.data?.find((o) => o.id === selected) ?? null;
  const columns = useMemo<ColumnDef<Offering>[]>(
    () => [
      { id: 'address', accessorKey: 'address', header: 'Address', size: 230 },
      {
        id: 'visibility',
        accessorKey: 'visibility',
        header: 'Visibility',
        size: 120,
        cell: ({ row }) => (
          <select
            aria-label={`Visibility of ${row.original.address}`}
            value={row.original.visibility}
            disabled={!canPublish || update.isPending}
            onChange={(e) => update.mutate({ id: row.original.id, body: { visibility: e.target.value } })}
          >
            {VISIBILITIES.map((v) => (
              <option key={v}>{v}</option>
            ))}
          </select>
        ),
      },
      {
        id: 'serving',
        header: 'Serving',
        size: 150,
        accessorFn: (o) => o.serving,
        cell: ({ row }) => (row.original.serving ? <Badge tone="ok">serving</Badge> : <Badge tone="warn">no instance</Badge>),
      },
      {
        id: 'technical',
        accessorKey: 'technical_active',
        header: 'Technical',
        size: 110,
        cell: ({ row }) => (
          <input
            type="checkbox"
            role="switch"
            aria-label={`Technical activation of ${row.original.address}`}
            checked={row.original.technical_active}
            disabled={!canPublish || update.isPending}
            onChange={(e) => update.mutate({ id: row.original.id, body: { technical_active: e.target.checked } })}
          />
        ),
      },
      {
        id: 'economic',
        accessorKey: 'economic_active',
        header: 'Economic',
        size: 110,
        cell: ({ row }) => (
          <input
            type="checkbox"
            role="switch"
            aria-label={`Economic activation of ${row.original.address}`}
            checked={row.original.economic_active}
            disabled={!canSell || update.isPending}
            onChange={(e) => update.mutate({ id: row.original.id, body: { economic_active: e.target.checked } })}
          />
        ),
      },
      {
        id: 'price',
        header: 'EUR per 1k / 1M tokens',
        size: 260,
        accessorFn: (o) => Number(o.input_eur_per_1k ?? 0),
        cell: ({ row }) => <Prices input={row.original.input_eur_per_1k} output={row.original.output_eur_per_1k} cached={row.original.cached_input_eur_per_1k} />,
      },
      { id: 'created', accessorKey: 'created_at', header: 'Published', size: 140, cell: ({ row }) => <DateText value={row.original.created_at} /> },
      {
        id: 'actions',
        header: 'Actions',
        size: 170,
        enableSorting: false,
        cell: ({ row }) => (
          <span className="row-actions">
            {canSell ? (
              <button type="button" className="button button-small" onClick={() => setPricing(row.original)} aria-label={`New price for ${row.original.address}`}>
                New price
              </button>
            ) : null}
            <button type="button" className="button button-small" onClick={() => setSelected(row.original.id)} aria-label={`Shares of ${row.original.address}`}>
              Shares
            </button>
          </span>
        ),
      },
    ],
    [canPublish, canSell, update],
  );
  return (
    <>
      <PageHeader title="Offerings">
        {canPublish ? (
          <button type="button" className="button button-primary" onClick={() => setPublishing(true)}>
            Publish a model
          </button>
        ) : null}
      </PageHeader>
      <Card title="Models this organization offers">
        <ErrorMessage error={update.error} />
        {offerings.isPending ? <Loading /> : offerings.isError ? <ErrorMessage error={offerings.error} /> : offerings.data.length === 0 ? (
          <Empty>Nothing published yet: publish a model your instances serve, then share it.</Empty>
        ) : (
          <DataTable id="offerings" label="Offerings" columns={columns} data={offerings.data} getRowId={(o) => o.id} searchText={offeringText} pageSize={25} />
        )}
      </Card>
      {current ? <SharesCard offering={current} canSell={canSell} /> : null}
      {current ? <ConsumersPromptCard offering={current} editable={canPublish} /> : null}
      <Dialog title="Publish a model" open={publishing} onClose={() => setPublishing(false)}>
        {publishing ? <PublishForm onDone={() => setPublishing(false)} /> : null}
      </Dialog>
      <Dialog title="New price" open={pricing !== null} onClose={() => setPricing(null)}>
        {pricing ? <PriceForm offering={pricing} onDone={() => setPricing(null)} /> : null}
      </Dialog>
    </>
  );
}

function PublishForm({ onDone }: { onDone: () => void }) {
  const publish = usePublishOffering();
  const runtime = useQuery({
    queryKey: ['runtime-models', 24],
    queryFn: () => api<RuntimeModel[]>('/runtime/models', { query: { hours: 24 } }),
  });
  const [model, setModel] = useState('');
  const [visibility, setVisibility] = useState<string>('private');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    publish.mutate({ model_code: model.trim(), visibility }, { onSuccess: onDone });
  };
  return (
    <form className="form" onSubmit={submit} aria-label="Publish a model">
      <Field
        label="Model"
        list="offering-models"
        value={model}
        required
        onChange={(e) => setModel(e.target.value)}
        hint="A model your instances serve; it is addressed as your-organization/model."
      />
      <datalist id="offering-models">
        {(runtime.data ?? []).map((m) => (
          <option key={m.model} value={m.model} />
        ))}
      </datalist>
      <SelectField label="Visibility" value={visibility} onChange={(e) => setVisibility(e.target.value)} hint="private: only through shares; unlisted: by address once accepted; public: listed to everyone.">
        {VISIBILITIES.map((v) => (
          <option key={v}>{v}</option>
        ))}
      </SelectField>
      <ErrorMessage error={publish.error} />
      <div className="form-actions">
        <button type="button" className="button" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="button button-primary" disabled={publish.isPending || !model.trim()}>
          Publish
        </button>
      </div>
    </form>
  );
}

function PriceForm({ offering, onDone }: { offering: Offering; onDone: () => void }) {
  const price = useNewPrice();
  const [input, setInput] = useState(offering.input_eur_per_1k ?? '');
  const [output, setOutput] = useState(offering.output_eur_per_1k ?? '');
  const [cached, setCached] = useState('');
  const [effective, setEffective] = useState('');
  const invalid = priceError(input, output, cached);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = {
      input_eur_per_1k: parsePrice(input) ?? input.trim(),
      output_eur_per_1k: parsePrice(output) ?? output.trim(),
      cached_input_eur_per_1k: cached.trim() === '' ? null : (parsePrice(cached) ?? cached.trim()),
      effective_at: effective ? new Date(effective).toISOString() : null,
    };
    price.mutate({ id: offering.id, body }, { onSuccess: onDone });
  };
  return (
    <form className="form" onSubmit={submit} aria-label={`New price for ${offering.address}`}>
      <p className="muted">
        {offering.address}: a new version; calls made before it takes effect keep their price.
      </p>
      <Field label="Input EUR per 1k tokens" inputMode="decimal" value={input} required onChange={(e) => setInput(e.target.value)} hint={perMillionHint(input)} />
      <Field label="Output EUR per 1k tokens" inputMode="decimal" value={output} required onChange={(e) => setOutput(e.target.value)} hint={perMillionHint(output)} />
      <Field
        label="Cached input EUR per 1k tokens (optional)"
        inputMode="decimal"
        value={cached}
        onChange={(e) => setCached(e.target.value)}
        hint={`Prompt tokens the engine serves from its prefix cache; the input rate when empty, never above it.${cached.trim() ? ` ${perMillionHint(cached) ?? ''}` : ''}`}
      />
      <Field label="Effective at (optional)" type="datetime-local" value={effective} onChange={(e) => setEffective(e.target.value)} hint="Now when empty; never in the past." />
      {input && output && invalid ? <p className="error">{invalid}</p> : null}
      <ErrorMessage error={price.error} />
      <div className="form-actions">
        <button type="button" className="button" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="button button-primary" disabled={price.isPending || invalid !== null}>
          Save price
        </button>
      </div>
    </form>
  );
}

/** The system prompt the consumers' calls of the offering get, unless their key or organization has one. */
function ConsumersPromptCard({ offering, editable }: { offering: Offering; editable: boolean }) {
  const prompts = useSystemPrompts();
  const current = promptOf(prompts.data, 'offering', offering.id);
  return (
    <Card title={`System prompt for the consumers of ${offering.address}`}>
      <p className="muted">Applied to their chat completions unless their API key or organization has a prompt of its own. Counted in their prompt tokens.</p>
      {prompts.isPending ? (
        <Loading />
      ) : prompts.isError ? (
        <ErrorMessage error={prompts.error} />
      ) : (
        <PromptForm
          key={`${offering.id}/${current?.version ?? 0}`}
          path={`/organizations/current/offerings/${offering.id}/system-prompt`}
          formLabel="The consumers’ system prompt"
          fieldLabel="Consumers’ system prompt"
          setLabel="Set the consumers’ prompt"
          clearLabel="Clear the consumers’ prompt"
          current={current}
          editable={editable}
        />
      )}
    </Card>
  );
}

/** The offering's cost recovery over the last 30 days (roles that read FinOps). */
function RecoveryLine({ offeringId }: { offeringId: string }) {
  const allowed = useCan('ViewFinOps');
  const recovery = useCostRecovery(allowed);
  const r = recovery.data?.find((x) => x.offering_id === offeringId);
  if (!allowed || !r) return null;
  return (
    <p className="muted">
      Last 30 days: revenue <Money value={r.revenue_eur} />, GPU cost <Money value={r.gpu_cost_eur} />, margin <Margin value={r.margin_eur} />.
    </p>
  );
}

function SharesCard({ offering, canSell }: { offering: Offering; canSell: boolean }) {
  const shares = useShares(offering.id);
  const update = useUpdateShare(offering.id);
  const [sharing, setSharing] = useState(false);
  const columns = useMemo<ColumnDef<Share>[]>(
    () => [
      { id: 'consumer', accessorKey: 'consumer_org_slug', header: 'Organization', size: 180 },
      { id: 'status', accessorKey: 'status', header: 'Status', size: 110, cell: ({ row }) => <StatusBadge kind="share" status={row.original.status} /> },
      { id: 'accepted', accessorKey: 'accepted_at', header: 'Accepted', size: 180, cell: ({ row }) => <DateText value={row.original.accepted_at} /> },
      {
        id: 'price',
        header: 'Own EUR per 1k / 1M tokens',
        size: 260,
        accessorFn: (s) => Number(s.input_eur_per_1k ?? 0),
        cell: ({ row }) =>
          row.original.input_eur_per_1k ? (
            <Prices input={row.original.input_eur_per_1k} output={row.original.output_eur_per_1k} cached={row.original.cached_input_eur_per_1k} />
          ) : (
            "the offering's"
          ),
      },
      {
        id: 'actions',
        header: 'Actions',
        size: 220,
        enableSorting: false,
        cell: ({ row }) => {
          const s = row.original;
          if (!canSell || s.status === 'revoked') return null;
          const set = (status: ShareStatus) => update.mutate({ id: s.id, body: { status } });
          return (
            <span className="row-actions">
              {s.status === 'paused' ? (
                <button type="button" className="button button-small" onClick={() => set('active')} disabled={update.isPending} aria-label={`Resume the share with ${s.consumer_org_slug}`}>
                  Resume
                </button>
              ) : (
                <button type="button" className="button button-small" onClick={() => set('paused')} disabled={update.isPending} aria-label={`Pause the share with ${s.consumer_org_slug}`}>
                  Pause
                </button>
              )}
              <button
                type="button"
                className="button button-small button-danger"
                disabled={update.isPending}
                aria-label={`Revoke the share with ${s.consumer_org_slug}`}
                onClick={() => {
                  if (window.confirm(`Revoke ${s.consumer_org_slug}'s access to ${offering.address}? This is final.`)) set('revoked');
                }}
              >
                Revoke
              </button>
            </span>
          );
        },
      },
    ],
    [canSell, update, offering.address],
  );
  return (
    <Card
      title={`Shares of ${offering.address}`}
      actions={
        canSell ? (
          <button type="button" className="button button-primary" onClick={() => setSharing(true)}>
            Share with an organization
          </button>
        ) : undefined
      }
    >
      <RecoveryLine offeringId={offering.id} />
      <Dialog title={`Share ${offering.address}`} open={sharing} onClose={() => setSharing(false)}>
        {sharing ? <ShareForm offering={offering} onDone={() => setSharing(false)} /> : null}
      </Dialog>
      <ErrorMessage error={update.error} />
      {shares.isPending ? <Loading /> : shares.isError ? <ErrorMessage error={shares.error} /> : shares.data.length === 0 ? (
        <Empty>Not shared with anyone yet.</Empty>
      ) : (
        <DataTable
          id="offering-shares"
          label="Shares"
          columns={columns}
          data={shares.data}
          getRowId={(s) => s.id}
          searchText={shareText}
          pageSize={25}
        />
      )}
    </Card>
  );
}

function ShareForm({ offering, onDone }: { offering: Offering; onDone: () => void }) {
  const create = useCreateShare(offering.id);
  const me = useMe();
  // Suggestions: the caller's other organizations (already known to them), never a directory of everyone's.
  const mine = (me.data?.memberships ?? []).filter((m) => m.id !== me.data?.current_organization.id);
  const [slug, setSlug] = useState('');
  const [input, setInput] = useState('');
  const [output, setOutput] = useState('');
  const priced = input.trim() !== '' || output.trim() !== '';
  const invalid = priced ? priceError(input, output) : null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = priced
      ? { consumer_org_slug: slug.trim(), input_eur_per_1k: parsePrice(input) ?? input.trim(), output_eur_per_1k: parsePrice(output) ?? output.trim() }
      : { consumer_org_slug: slug.trim() };
    create.mutate(body, { onSuccess: onDone });
  };
  return (
    <form className="form" onSubmit={submit} aria-label={`Share ${offering.address}`}>
      <Field
        label="Organization slug"
        value={slug}
        required
        autoComplete="off"
        spellCheck={false}
        list={mine.length > 0 ? 'share-own-organizations' : undefined}
        onChange={(e) => setSlug(e.target.value)}
        hint="The exact slug of the organization, as its Organization page shows it (ask one of its members), or one of yours. Nothing is charged until one of its managers accepts."
      />
      {mine.length > 0 ? (
        <datalist id="share-own-organizations">
          {mine.map((m) => (
            <option key={m.id} value={m.slug}>
              {m.name}
            </option>
          ))}
        </datalist>
      ) : null}
      <Field
        label="Its input EUR per 1k tokens (optional)"
        inputMode="decimal"
        value={input}
        onChange={(e) => setInput(e.target.value)}
        hint={perMillionHint(input) ?? "The offering's price when both are empty."}
      />
      <Field label="Its output EUR per 1k tokens (optional)" inputMode="decimal" value={output} onChange={(e) => setOutput(e.target.value)} hint={perMillionHint(output)} />
      {invalid ? <p className="error">{invalid}</p> : null}
      <ErrorMessage error={create.error} />
      <div className="form-actions">
        <button type="button" className="button" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="button button-primary" disabled={create.isPending || !slug.trim() || invalid !== null}>
          Share
        </button>
      </div>
    </form>
  );
}
