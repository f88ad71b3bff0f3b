//! What a worker agent sends the control plane: registration and heartbeats.
//! The JSON schemas in `inventiv-worker/schema/` describe the same shapes;
//! version 1 of the heartbeat (no system samples) is still accepted.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::ValueError;

/// The newest heartbeat schema version.
pub const HEARTBEAT_SCHEMA_VERSION: u8 = 2;

fn err(field: &'static str, reason: impl Into<String>) -> ValueError {
    ValueError {
        field,
        reason: reason.into(),
    }
}

/// The agent's identity.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// Agent version, e.g. `0.1.0`.
    pub version: String,
    /// SHA-256 (hex) of the agent bundle it runs from.
    pub bundle_sha256: String,
}

/// How the node serves the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkerMode {
    /// One engine on all GPUs.
    Mono,
    /// One engine per GPU behind HAProxy.
    Multi,
}

/// Sent once per agent start.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub schema_version: u8,
    pub instance_id: Uuid,
    pub boot_id: String,
    pub agent: AgentInfo,
    pub model_id: String,
    pub mode: WorkerMode,
    #[serde(default)]
    pub gpu_count: Option<u8>,
    pub agent_port: u16,
    /// The port serving the OpenAI API (HAProxy's in multi mode).
    pub engine_port: u16,
}

stored_enum! {
    /// The agent's view of its node (stored in `instances.worker_status`).
    pub enum WorkerStatus {
        Starting = "starting",
        Ready = "ready",
        Draining = "draining",
        Error = "error",
    }
}

/// One engine behind HAProxy (multi mode).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub port: u16,
    #[serde(default)]
    pub gpu_index: Option<u8>,
    pub ready: bool,
}

/// The inference engine's state, scraped from its `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineState {
    pub ready: bool,
    pub requests_running: u32,
    pub requests_waiting: u32,
    pub restarts: u32,
    #[serde(default)]
    pub last_exit_code: Option<i32>,
    #[serde(default)]
    pub backends: Option<Vec<Backend>>,
    /// The engines' cumulative token counters (optional: older agents omit them).
    #[serde(default)]
    pub tokens: Option<TokenCounters>,
}

/// The largest counter value accepted (2^53: exact in JSON numbers and in i64).
pub const MAX_TOKEN_COUNTER: u64 = 1 << 53;

/// `vllm:prompt_tokens_total` and `vllm:generation_tokens_total` summed over
/// the node's engines since they started: the worker's word, a detection
/// signal for metering drift, never a billing input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCounters {
    /// Prompt tokens the engines processed.
    pub prompt_total: u64,
    /// Tokens the engines generated.
    pub generation_total: u64,
}

/// One GPU's sample (from NVML or nvidia-smi; absent without a GPU).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuSample {
    pub index: u8,
    #[serde(default)]
    pub name: Option<String>,
    pub utilization_pct: f32,
    pub memory_used_mib: f32,
    pub memory_total_mib: f32,
    #[serde(default)]
    pub temperature_c: Option<f32>,
    #[serde(default)]
    pub power_w: Option<f32>,
}

/// Host samples from /proc.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemSample {
    pub cpu_pct: f32,
    pub load1: f32,
    #[serde(default)]
    pub load5: Option<f32>,
    #[serde(default)]
    pub load15: Option<f32>,
    pub memory_used_mib: f32,
    pub memory_total_mib: f32,
    #[serde(default)]
    pub disk_used_gib: Option<f32>,
    #[serde(default)]
    pub disk_total_gib: Option<f32>,
    #[serde(default)]
    pub net_rx_bytes_per_s: Option<f32>,
    #[serde(default)]
    pub net_tx_bytes_per_s: Option<f32>,
}

/// Sent every heartbeat interval (schema version 1 or 2; `engine.tokens`
/// is an optional part of version 2).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub schema_version: u8,
    pub instance_id: Uuid,
    pub boot_id: String,
    pub agent: AgentInfo,
    pub status: WorkerStatus,
    pub model_id: String,
    pub engine: EngineState,
    #[serde(default)]
    pub gpus: Option<Vec<GpuSample>>,
    /// Version 2 only.
    #[serde(default)]
    pub system: Option<SystemSample>,
    /// RFC 3339 time the agent sent it.
    pub sent_at: String,
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), ValueError> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(err(field, format!("1 to {max} printable characters")));
    }
    Ok(())
}

fn finite_in(field: &'static str, v: f32, max: f32) -> Result<(), ValueError> {
    if !v.is_finite() || v < 0.0 || v > max {
        return Err(err(field, format!("a number from 0 to {max}")));
    }
    Ok(())
}

impl AgentInfo {
    fn validate(&self) -> Result<(), ValueError> {
        text("agent.version", &self.version, 32)?;
        let hex = self.bundle_sha256.len() == 64
            && self
                .bundle_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(err("agent.bundle_sha256", "64 lowercase hex characters"));
        }
        Ok(())
    }
}

impl Register {
    /// Checks bounds the types cannot express.
    pub fn validate(&self) -> Result<(), ValueError> {
        if !(1..=HEARTBEAT_SCHEMA_VERSION).contains(&self.schema_version) {
            return Err(err("schema_version", "1 or 2"));
        }
        text("boot_id", &self.boot_id, 64)?;
        text("model_id", &self.model_id, 200)?;
        self.agent.validate()?;
        if self.gpu_count.is_some_and(|n| n > 16) {
            return Err(err("gpu_count", "at most 16"));
        }
        if self.agent_port == 0 || self.engine_port == 0 {
            return Err(err("agent_port", "ports are 1 to 65535"));
        }
        Ok(())
    }
}

impl Heartbeat {
    /// Checks bounds and that version 1 carries no system samples nor token counters.
    pub fn validate(&self) -> Result<(), ValueError> {
        match (self.schema_version, &self.system) {
            (1, Some(_)) => return Err(err("system", "not part of schema version 1")),
            (1, None) if self.engine.tokens.is_some() => {
                return Err(err("engine.tokens", "not part of schema version 1"))
            }
            (1 | 2, _) => {}
            _ => return Err(err("schema_version", "1 or 2")),
        }
        text("boot_id", &self.boot_id, 64)?;
        text("model_id", &self.model_id, 200)?;
        text("sent_at", &self.sent_at, 64)?;
        self.agent.validate()?;
        if self.engine.tokens.is_some_and(|t| {
            t.prompt_total > MAX_TOKEN_COUNTER || t.generation_total > MAX_TOKEN_COUNTER
        }) {
            return Err(err("engine.tokens", "counters from 0 to 2^53"));
        }
        if self.engine.backends.as_ref().is_some_and(|b| b.len() > 16) {
            return Err(err("engine.backends", "at most 16"));
        }
        let gpus = self.gpus.as_deref().unwrap_or_default();
        if gpus.len() > 16 {
            return Err(err("gpus", "at most 16"));
        }
        for g in gpus {
            finite_in("gpus.utilization_pct", g.utilization_pct, 100.0)?;
            finite_in("gpus.memory_used_mib", g.memory_used_mib, 1e7)?;
            finite_in("gpus.memory_total_mib", g.memory_total_mib, 1e7)?;
            if let Some(name) = &g.name {
                text("gpus.name", name, 100)?;
            }
        }
        if let Some(s) = &self.system {
            finite_in("system.cpu_pct", s.cpu_pct, 100.0)?;
            finite_in("system.load1", s.load1, 1e6)?;
            finite_in("system.memory_used_mib", s.memory_used_mib, 1e9)?;
            finite_in("system.memory_total_mib", s.memory_total_mib, 1e9)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(version: u8, system: bool) -> Heartbeat {
        Heartbeat {
            schema_version: version,
            instance_id: Uuid::nil(),
            boot_id: "boot".into(),
            agent: AgentInfo {
                version: "0.1.0".into(),
                bundle_sha256: "a".repeat(64),
            },
            status: WorkerStatus::Ready,
            model_id: "m".into(),
            engine: EngineState {
                ready: true,
                requests_running: 0,
                requests_waiting: 0,
                restarts: 0,
                last_exit_code: None,
                backends: None,
                tokens: None,
            },
            gpus: None,
            system: system.then_some(SystemSample {
                cpu_pct: 5.0,
                load1: 0.1,
                load5: None,
                load15: None,
                memory_used_mib: 1.0,
                memory_total_mib: 2.0,
                disk_used_gib: None,
                disk_total_gib: None,
                net_rx_bytes_per_s: None,
                net_tx_bytes_per_s: None,
            }),
            sent_at: "2026-11-23T00:00:00Z".into(),
        }
    }

    #[test]
    fn versions() {
        assert!(heartbeat(2, true).validate().is_ok());
        assert!(heartbeat(2, false).validate().is_ok());
        assert!(heartbeat(1, false).validate().is_ok());
        assert!(heartbeat(1, true).validate().is_err());
        assert!(heartbeat(3, false).validate().is_err());
        let mut v1 = heartbeat(1, false);
        v1.engine.tokens = Some(TokenCounters {
            prompt_total: 1,
            generation_total: 1,
        });
        assert!(v1.validate().is_err());
    }

    #[test]
    fn bounds() {
        let mut h = heartbeat(2, true);
        h.agent.bundle_sha256 = "XYZ".into();
        assert!(h.validate().is_err());
        let mut h = heartbeat(2, true);
        if let Some(s) = h.system.as_mut() {
            s.cpu_pct = f32::NAN;
        }
        assert!(h.validate().is_err());
        let mut h = heartbeat(2, false);
        h.engine.tokens = Some(TokenCounters {
            prompt_total: MAX_TOKEN_COUNTER,
            generation_total: 0,
        });
        assert!(h.validate().is_ok());
        h.engine.tokens = Some(TokenCounters {
            prompt_total: 0,
            generation_total: MAX_TOKEN_COUNTER + 1,
        });
        assert!(h.validate().is_err());
    }
}
