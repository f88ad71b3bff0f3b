//! Metering off the request path: handlers send one record per answered
//! request on a channel; a writer inserts them in batches at least every
//! second and flushes what is left at shutdown. The request id is unique,
//! so a retried batch cannot count a request twice.
//!
//! A request through a share is charged in the same statement: the price
//! version in force at the request time (the share's own, else the
//! offering's) is joined in SQL, and `charged_eur = (prompt x input +
//! completion x output) / 1000` is stored exactly on the row (0 when the
//! offering has no price). Later price versions never touch written rows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One answered `/v1` request.
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub request_id: String,
    pub at: DateTime<Utc>,
    pub organization_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub model: String,
    pub endpoint: &'static str,
    pub instance_id: Option<Uuid>,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub latency_ms: i32,
    pub ttft_ms: Option<i32>,
    pub status: i32,
    pub streamed: bool,
    /// Set when the model was reached through another organization's share.
    pub shared: Option<SharedUse>,
}

/// The share a request went through.
#[derive(Debug, Clone, Copy)]
pub struct SharedUse {
    pub provider_organization_id: Uuid,
    pub offering_id: Uuid,
    pub share_id: Uuid,
}

/// The sending side, cloned into handlers.
pub type UsageSender = mpsc::Sender<UsageRecord>;

/// Capacity of the channel; a full channel means the database is far behind.
pub const CAPACITY: usize = 100_000;

/// Records kept in memory while the database refuses them. Beyond this
/// the writer stops draining the channel, which fills up, and new records
/// are dropped with an error log instead of memory growing without bound.
const MAX_PENDING: usize = CAPACITY;

/// Writes the batch; false when the database refused it (kept for a retry).
async fn flush(db: &sqlx::PgPool, batch: &mut Vec<UsageRecord>) -> bool {
    if batch.is_empty() {
        return true;
    }
    let mut request_ids = Vec::with_capacity(batch.len());
    let (mut at, mut org, mut key, mut user, mut model, mut endpoint, mut instance) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut prompt, mut completion, mut latency, mut ttft, mut status, mut streamed) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut provider, mut offering, mut share) = (vec![], vec![], vec![]);
    for r in batch.iter() {
        request_ids.push(r.request_id.clone());
        at.push(r.at);
        org.push(r.organization_id);
        key.push(r.api_key_id);
        user.push(r.user_id);
        model.push(r.model.clone());
        endpoint.push(r.endpoint.to_owned());
        instance.push(r.instance_id);
        prompt.push(r.prompt_tokens);
        completion.push(r.completion_tokens);
        latency.push(r.latency_ms);
        ttft.push(r.ttft_ms);
        status.push(r.status);
        streamed.push(r.streamed);
        provider.push(r.shared.map(|s| s.provider_organization_id));
        offering.push(r.shared.map(|s| s.offering_id));
        share.push(r.shared.map(|s| s.share_id));
    }
    let result = sqlx::query(
        "INSERT INTO usage_records (request_id, at, organization_id, api_key_id, user_id, model, endpoint, instance_id,
                                    prompt_tokens, completion_tokens, latency_ms, ttft_ms, status, streamed,
                                    provider_organization_id, offering_id, share_id, price_version_id, charged_eur)
         SELECT r.*, p.id,
                CASE WHEN r.share_id IS NOT NULL
                     THEN COALESCE((r.prompt_tokens * p.input_eur_per_1k + r.completion_tokens * p.output_eur_per_1k) / 1000, 0) END
           FROM UNNEST($1::text[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::uuid[],
                       $9::int[], $10::int[], $11::int[], $12::int[], $13::int[], $14::bool[], $15::uuid[], $16::uuid[], $17::uuid[])
                AS r(request_id, at, organization_id, api_key_id, user_id, model, endpoint, instance_id, prompt_tokens, completion_tokens,
                     latency_ms, ttft_ms, status, streamed, provider_organization_id, offering_id, share_id)
           LEFT JOIN LATERAL (
                SELECT v.id, v.input_eur_per_1k, v.output_eur_per_1k FROM offering_prices v
                 WHERE v.offering_id = r.offering_id AND (v.share_id = r.share_id OR v.share_id IS NULL) AND v.effective_at <= r.at
                 ORDER BY v.share_id IS NULL, v.effective_at DESC LIMIT 1) p ON r.share_id IS NOT NULL
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(&request_ids)
    .bind(&at)
    .bind(&org)
    .bind(&key)
    .bind(&user)
    .bind(&model)
    .bind(&endpoint)
    .bind(&instance)
    .bind(&prompt)
    .bind(&completion)
    .bind(&latency)
    .bind(&ttft)
    .bind(&status)
    .bind(&streamed)
    .bind(&provider)
    .bind(&offering)
    .bind(&share)
    .execute(db)
    .await;
    match result {
        Ok(_) => {
            batch.clear();
            true
        }
        // Kept for the next flush; the unique request id makes the retry safe.
        Err(e) => {
            tracing::error!(error = %e, rows = batch.len(), "usage batch not written; will retry");
            false
        }
    }
}

/// Writes records until shutdown, then drains and flushes the rest.
pub async fn run(
    db: sqlx::PgPool,
    mut rx: mpsc::Receiver<UsageRecord>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(1024);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // After a refused write, retries wait for the tick rather than every
    // record that arrives.
    let mut writing = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => writing = flush(&db, &mut batch).await,
            r = rx.recv(), if batch.len() < MAX_PENDING => match r {
                Some(r) => {
                    batch.push(r);
                    if writing && batch.len() >= 1000 {
                        writing = flush(&db, &mut batch).await;
                    }
                }
                None => break,
            },
        }
    }
    rx.close();
    while let Some(r) = rx.recv().await {
        batch.push(r);
    }
    flush(&db, &mut batch).await;
}
