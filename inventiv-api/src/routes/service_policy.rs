//! A service's scaling policy, bounds and placements: what they may be (the
//! bounds of `inventiv_common::service`, which the database CHECKs mirror;
//! each placement checked as a deployment's), and the PATCH body that
//! changes them.

use inventiv_common::service::{
    MAX_IDLE_WINDOW_S, MAX_PLACEMENTS, MAX_REPLICAS, MAX_SCALE_DOWN_COOLDOWN_S,
    MAX_TARGET_OUTSTANDING, MAX_TARGET_TTFT_P95_MS,
};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::placement::{self, Placement};
use crate::routes::budget_limits::amount;
use crate::services::{Loaded, Service};
use crate::state::AppState;

/// Bounds and policy of a service.
pub struct Policy {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub target_outstanding: Option<f64>,
    pub target_ttft_p95_ms: Option<i32>,
    pub idle_window_s: i32,
    pub scale_down_cooldown_s: i32,
    pub gpu_hours_cap: Option<String>,
    pub eur_cap: Option<String>,
}

fn invalid(message: String) -> ApiError {
    ApiError::validation("VALIDATION_ERROR", message)
}

impl Policy {
    /// The policy if every value is within its bounds.
    pub fn validated(self) -> ApiResult<Policy> {
        if !(0..=MAX_REPLICAS).contains(&self.min_replicas) {
            return Err(invalid(format!("min_replicas: 0 to {MAX_REPLICAS}")));
        }
        if !(1..=MAX_REPLICAS).contains(&self.max_replicas) {
            return Err(invalid(format!("max_replicas: 1 to {MAX_REPLICAS}")));
        }
        if self.min_replicas > self.max_replicas {
            return Err(ApiError::validation(
                "INVALID_BOUNDS",
                format!(
                    "min_replicas ({}) must not exceed max_replicas ({})",
                    self.min_replicas, self.max_replicas
                ),
            ));
        }
        if self
            .target_outstanding
            .is_some_and(|t| !(t > 0.0 && t <= MAX_TARGET_OUTSTANDING))
        {
            return Err(invalid(format!(
                "target_outstanding: above 0, at most {MAX_TARGET_OUTSTANDING}"
            )));
        }
        if self
            .target_ttft_p95_ms
            .is_some_and(|t| !(1..=MAX_TARGET_TTFT_P95_MS).contains(&t))
        {
            return Err(invalid(format!(
                "target_ttft_p95_ms: 1 to {MAX_TARGET_TTFT_P95_MS}"
            )));
        }
        if !(1..=MAX_IDLE_WINDOW_S).contains(&self.idle_window_s) {
            return Err(invalid(format!("idle_window_s: 1 to {MAX_IDLE_WINDOW_S}")));
        }
        if !(0..=MAX_SCALE_DOWN_COOLDOWN_S).contains(&self.scale_down_cooldown_s) {
            return Err(invalid(format!(
                "scale_down_cooldown_s: 0 to {MAX_SCALE_DOWN_COOLDOWN_S}"
            )));
        }
        Ok(Policy {
            gpu_hours_cap: amount("gpu_hours_cap", self.gpu_hours_cap, 10, 4)?,
            eur_cap: amount("eur_cap", self.eur_cap, 10, 4)?,
            ..self
        })
    }
}

/// Changes to a service; absent fields keep their value, null clears a
/// nullable one. The model and the mode stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateService {
    /// At most 100 printable characters.
    name: Option<String>,
    /// 0 to `max_replicas`.
    min_replicas: Option<i32>,
    /// `min_replicas` to 16, at least 1.
    max_replicas: Option<i32>,
    /// Above 0, at most 1000; null: not a signal.
    #[serde(default, with = "super::double_option")]
    #[schema(value_type = Option<f64>)]
    target_outstanding: Option<Option<f64>>,
    /// 1 to 600000; null: not a signal.
    #[serde(default, with = "super::double_option")]
    #[schema(value_type = Option<i32>)]
    target_ttft_p95_ms: Option<Option<i32>>,
    /// 1 to 604800.
    idle_window_s: Option<i32>,
    /// 0 to 86400.
    scale_down_cooldown_s: Option<i32>,
    /// A non-negative decimal string; null: no cap.
    #[serde(default, with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    gpu_hours_cap: Option<Option<String>>,
    /// A non-negative decimal string; null: no cap.
    #[serde(default, with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    eur_cap: Option<Option<String>>,
    /// 1 to 8, first preferred, replacing the list; each checked as a deployment's.
    pub placements: Option<Vec<Placement>>,
}

/// The service's policy and name with `body` applied, validated, and the
/// names of the fields it sets.
pub fn merge(
    service: &Service,
    body: &UpdateService,
) -> ApiResult<(Policy, String, Vec<&'static str>)> {
    let mut changed = Vec::new();
    let mut note = |set: bool, field: &'static str| {
        if set {
            changed.push(field);
        }
    };
    note(body.name.is_some(), "name");
    note(body.min_replicas.is_some(), "min_replicas");
    note(body.max_replicas.is_some(), "max_replicas");
    note(body.target_outstanding.is_some(), "target_outstanding");
    note(body.target_ttft_p95_ms.is_some(), "target_ttft_p95_ms");
    note(body.idle_window_s.is_some(), "idle_window_s");
    note(
        body.scale_down_cooldown_s.is_some(),
        "scale_down_cooldown_s",
    );
    note(body.gpu_hours_cap.is_some(), "gpu_hours_cap");
    note(body.eur_cap.is_some(), "eur_cap");
    note(body.placements.is_some(), "placements");
    if changed.is_empty() {
        return Err(invalid("set at least one field".into()));
    }
    let name = match &body.name {
        Some(raw) => placement::name(Some(raw))?
            .ok_or_else(|| invalid("name: at most 100 printable characters, not empty".into()))?,
        None => service.name.clone(),
    };
    let policy = Policy {
        min_replicas: body.min_replicas.unwrap_or(service.min_replicas),
        max_replicas: body.max_replicas.unwrap_or(service.max_replicas),
        target_outstanding: body
            .target_outstanding
            .unwrap_or(service.target_outstanding),
        target_ttft_p95_ms: body
            .target_ttft_p95_ms
            .unwrap_or(service.target_ttft_p95_ms),
        idle_window_s: body.idle_window_s.unwrap_or(service.idle_window_s),
        scale_down_cooldown_s: body
            .scale_down_cooldown_s
            .unwrap_or(service.scale_down_cooldown_s),
        gpu_hours_cap: body
            .gpu_hours_cap
            .clone()
            .unwrap_or_else(|| service.gpu_hours_cap.clone()),
        eur_cap: body
            .eur_cap
            .clone()
            .unwrap_or_else(|| service.eur_cap.clone()),
    }
    .validated()?;
    Ok((policy, name, changed))
}

/// Checks placements replacing those of a service, for the model it serves.
pub async fn check_new_placements(
    state: &AppState,
    org: Uuid,
    loaded: &Loaded,
    list: &[Placement],
) -> ApiResult<Vec<placement::Checked>> {
    let model_ref = loaded
        .model_catalog_id
        .map_or_else(|| loaded.service.model_id.clone(), |m| m.to_string());
    let model = placement::model(state, Some(model_ref.as_str())).await?;
    check_placements(state, org, &model, list).await
}

/// Checks a list of placements for `model`, in order (the first refusal
/// names its position).
pub async fn check_placements(
    state: &AppState,
    org: Uuid,
    model: &placement::Model,
    list: &[Placement],
) -> ApiResult<Vec<placement::Checked>> {
    if list.is_empty() || list.len() > MAX_PLACEMENTS {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            format!("placements: 1 to {MAX_PLACEMENTS}"),
        ));
    }
    if list.iter().enumerate().any(|(i, p)| list[..i].contains(p)) {
        return Err(ApiError::validation(
            "DUPLICATE_PLACEMENT",
            "placements: each at most once",
        ));
    }
    let mut checked = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        checked.push(
            placement::check(state, org, model, p)
                .await
                .map_err(|e| at(i, e))?,
        );
    }
    Ok(checked)
}

/// Says which placement a refusal is about.
fn at(position: usize, e: ApiError) -> ApiError {
    match e {
        ApiError::Validation { code, message } => ApiError::Validation {
            code,
            message: format!("placements[{position}]: {message}"),
        },
        ApiError::Conflict { code, message } => ApiError::Conflict {
            code,
            message: format!("placements[{position}]: {message}"),
        },
        other => other,
    }
}
