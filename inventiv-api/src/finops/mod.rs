//! FinOps: the cost job that turns instance running time into per-minute
//! cost buckets, monthly statements and their adjustments, each
//! organization's cost of the month as a gauge, and the
//! exact-money helpers the FinOps routes share, and the one CSV writer of
//! the API's exports (FinOps, statements, usage).
//! Money is Postgres `numeric` end to end and travels as decimal strings.

pub mod adjustments;
pub mod cost_job;
pub mod month_costs;
pub mod statement;

use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// A CSV download: a header line, then one line per row, every field quoted.
pub fn csv(filename: &str, header: &[&str], rows: Vec<Vec<String>>) -> Response {
    let quote = |f: &str| format!("\"{}\"", f.replace('"', "\"\""));
    let mut out = header.join(",");
    out.push('\n');
    for row in rows {
        let line: Vec<String> = row.iter().map(|f| quote(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (CONTENT_DISPOSITION, disposition),
        ],
        out,
    )
        .into_response()
}

/// The `format` query option of the exports; an unknown value is a 400
/// `INVALID_QUERY` naming the accepted ones.
#[derive(Deserialize, ToSchema, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

/// A checked time range: `from` before `to`, at most `max_days` long.
pub fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    default_days: i64,
    max_days: i64,
) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let to = to.unwrap_or_else(Utc::now);
    let from = from.unwrap_or(to - chrono::Duration::days(default_days));
    if from >= to {
        return Err(ApiError::validation(
            "INVALID_QUERY",
            "from must be before to",
        ));
    }
    if to - from > chrono::Duration::days(max_days) {
        return Err(ApiError::validation(
            "INVALID_QUERY",
            format!("at most {max_days} days at this bucket size"),
        ));
    }
    Ok((from, to))
}
