//! What a budget's limits may be: amounts as non-negative decimal strings
//! with explicit digits, token counts within 0 to 10^15, up to ten
//! thresholds from 1 to 100 %, GPU hours and stopping instances only on
//! the organization's budget, and at least one limit.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// The limits of a budget. At least one of the three limits is set.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBudget {
    /// EUR per month: a decimal string, up to 10 digits and 4 decimals.
    pub(super) monthly_eur: Option<String>,
    /// Tokens per month: 0 to 10^15.
    pub(super) monthly_tokens: Option<i64>,
    /// GPU hours per month (organization budgets): up to 10 digits and 2 decimals.
    pub(super) monthly_gpu_hours: Option<String>,
    /// Percentages from 1 to 100, at most 10; default 50, 80, 100.
    pub(super) thresholds: Option<Vec<i16>>,
    /// Default true.
    pub(super) hard_limit: Option<bool>,
    /// Default false (organization budgets with a GPU-hour limit).
    pub(super) stop_running: Option<bool>,
}

/// Limits, validated.
pub struct Limits {
    pub eur: Option<String>,
    pub tokens: Option<i64>,
    pub gpu_hours: Option<String>,
    pub thresholds: Vec<i16>,
    pub hard: bool,
    pub stop_running: bool,
}

/// A non-negative decimal string with at most `int` digits and `frac` decimals.
pub(crate) fn amount(
    field: &str,
    value: Option<String>,
    int: usize,
    frac: usize,
) -> ApiResult<Option<String>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let (i, f) = value.split_once('.').unwrap_or((&value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if i.is_empty()
        || i.len() > int
        || f.len() > frac
        || !digits(i)
        || !digits(f)
        || value.ends_with('.')
    {
        return Err(ApiError::validation(
            "INVALID_AMOUNT",
            format!("{field}: a non-negative decimal like \"12.5\" (at most {int} digits and {frac} decimals)"),
        ));
    }
    Ok(Some(value))
}

pub fn limits(organization_scope: bool, body: SetBudget) -> ApiResult<Limits> {
    let eur = amount("monthly_eur", body.monthly_eur, 10, 4)?;
    let gpu_hours = amount("monthly_gpu_hours", body.monthly_gpu_hours, 10, 2)?;
    if body
        .monthly_tokens
        .is_some_and(|t| !(0..=1_000_000_000_000_000).contains(&t))
    {
        return Err(ApiError::validation(
            "INVALID_AMOUNT",
            "monthly_tokens: 0 to 10^15",
        ));
    }
    let mut thresholds = body.thresholds.unwrap_or_else(|| vec![50, 80, 100]);
    thresholds.sort_unstable();
    thresholds.dedup();
    if thresholds.len() > 10 || thresholds.iter().any(|t| !(1..=100).contains(t)) {
        return Err(ApiError::validation(
            "INVALID_THRESHOLDS",
            "thresholds: at most 10 percentages from 1 to 100",
        ));
    }
    let stop_running = body.stop_running.unwrap_or(false);
    if !organization_scope && (gpu_hours.is_some() || stop_running) {
        return Err(ApiError::validation(
            "INVALID_BUDGET",
            "monthly_gpu_hours and stop_running belong to the organization's budget",
        ));
    }
    if stop_running && gpu_hours.is_none() {
        return Err(ApiError::validation(
            "INVALID_BUDGET",
            "stop_running needs monthly_gpu_hours",
        ));
    }
    if eur.is_none() && body.monthly_tokens.is_none() && gpu_hours.is_none() {
        return Err(ApiError::validation(
            "INVALID_BUDGET",
            "set at least one of monthly_eur, monthly_tokens, monthly_gpu_hours",
        ));
    }
    Ok(Limits {
        eur,
        tokens: body.monthly_tokens,
        gpu_hours,
        thresholds,
        hard: body.hard_limit.unwrap_or(true),
        stop_running,
    })
}
