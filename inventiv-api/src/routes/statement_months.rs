//! The billable statement of one month of the current organization
//! (`GET /finops/statements/{month}`: GPU time, calls through shares and
//! adjustment lines, to the cent; JSON, or an export as JSON or CSV), and
//! its close (`POST /finops/statements/{month}/close`, owners only): from
//! then on the statement is a stored snapshot that never changes, and a
//! later correction is an adjustment line of the next open month.

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use inventiv_common::{Action, UserId};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::finops::statement::{self, CloseError, Closer, Month, MonthStatement};
use crate::finops::{csv, Format};
use crate::state::AppState;

/// The longest note on a close.
const MAX_NOTE_CHARS: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(month_statement))
        .routes(routes!(close_month))
}

fn month(raw: &str) -> ApiResult<Month> {
    Month::parse(raw).ok_or_else(|| {
        ApiError::validation("INVALID_PATH", "month: YYYY-MM, from 2000-01 to 2999-12")
    })
}

/// How to answer.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Absent: the JSON document. `json` or `csv`: a download of it
    /// (`statement-YYYY-MM.json` or `.csv`, one row per line and a total row).
    #[param(inline)]
    format: Option<Format>,
}

/// One month's statement of the current organization (owners and managers):
/// the stored snapshot once the month is closed, the live lines before.
#[utoipa::path(get, path = "/finops/statements/{month}", tag = "finops", security(("bearer" = [])),
    params(("month" = String, Path, description = "YYYY-MM (UTC)"), ExportQuery),
    responses((status = 200, body = MonthStatement, description = "JSON; with format=csv a text/csv download"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn month_statement(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    caller.require(Action::ViewFinOps)?;
    let month = month(&raw)?;
    let statement = statement::load(&state.db, caller.org_id, month).await?;
    match q.format {
        None => Ok(Json(statement).into_response()),
        Some(Format::Csv) => Ok(as_csv(statement)),
        Some(Format::Json) => {
            let body = serde_json::to_vec(&statement)
                .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
            let disposition = format!("attachment; filename=\"statement-{month}.json\"");
            Ok((
                [
                    (CONTENT_TYPE, "application/json".to_owned()),
                    (CONTENT_DISPOSITION, disposition),
                ],
                body,
            )
                .into_response())
        }
    }
}

/// The CSV export: one row per line, then the total row.
fn as_csv(s: MonthStatement) -> Response {
    let status = if s.closed.is_some() { "closed" } else { "open" };
    let opt = |v: Option<String>| v.unwrap_or_default();
    let mut rows: Vec<Vec<String>> = s
        .lines
        .into_iter()
        .map(|l| {
            vec![
                s.month.clone(),
                status.to_owned(),
                l.kind,
                l.label,
                l.source_month,
                opt(l.gpu_seconds),
                opt(l.requests.map(|r| r.to_string())),
                opt(l.tokens.map(|t| t.to_string())),
                l.exact_eur,
                l.amount_eur,
                opt(l.adjustment_id.map(|a| a.to_string())),
                opt(l.instance_id.map(|i| i.to_string())),
                opt(l.reason),
                opt(l.cached_tokens.map(|t| t.to_string())),
            ]
        })
        .collect();
    let mut total = vec![String::new(); 14];
    total[0] = s.month.clone();
    total[1] = status.to_owned();
    total[2] = "total".to_owned();
    total[9] = s.totals.total_eur;
    rows.push(total);
    let header = [
        "month",
        "status",
        "kind",
        "label",
        "source_month",
        "gpu_seconds",
        "requests",
        "tokens",
        "exact_eur",
        "amount_eur",
        "adjustment_id",
        "instance_id",
        "reason",
        "cached_tokens",
    ];
    csv(&format!("statement-{}.csv", s.month), &header, rows)
}

/// A note kept with the closed statement.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseMonth {
    /// At most 500 characters.
    note: Option<String>,
}

/// Closes a month that has ended (owners): its statement is stored as it
/// stands, after carrying in what arrived late for earlier closed months.
#[utoipa::path(post, path = "/finops/statements/{month}/close", tag = "finops", security(("bearer" = [])),
    params(("month" = String, Path, description = "YYYY-MM (UTC)")), request_body = CloseMonth,
    responses((status = 201, body = MonthStatement, description = "The closed statement"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "MONTH_NOT_OVER or ALREADY_CLOSED")))]
async fn close_month(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Json(body): Json<CloseMonth>,
) -> ApiResult<(StatusCode, Json<MonthStatement>)> {
    caller.require(Action::CloseStatements)?;
    let month = month(&raw)?;
    let note = body
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            format!("note: at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    let email = sqlx::query_scalar!(
        "SELECT email FROM users WHERE id = $1",
        caller.user_id as UserId
    )
    .fetch_one(&state.db)
    .await?;
    let mut tx = state.db.begin().await?;
    let closer = Closer {
        user_id: caller.user_id.0,
        email: &email,
        note: note.as_deref(),
    };
    statement::close(&mut tx, caller.org_id, month, closer, Utc::now())
        .await
        .map_err(|e| match e {
            CloseError::NotOver => {
                ApiError::conflict("MONTH_NOT_OVER", format!("{month} has not ended yet (UTC)"))
            }
            CloseError::AlreadyClosed => {
                ApiError::conflict("ALREADY_CLOSED", format!("{month} is closed already"))
            }
            CloseError::Db(e) => e.into(),
        })?;
    let entry = audit::Entry::by(&caller, "statement.close", "statement", month.to_string())
        .details(serde_json::json!({ "note": note }));
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    let closed = statement::load(&state.db, caller.org_id, month).await?;
    Ok((StatusCode::CREATED, Json(closed)))
}
