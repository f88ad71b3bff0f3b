//! Worker settings of an organization on a provider: how its nodes run the
//! worker (GPU mode, ports, start-up timeout, bootstrap attempts, dead-man
//! switch). Typed,
//! with defaults for every field and bounds checked by
//! [`WorkerSettings::validate`]; the API stores them, the orchestrator
//! applies them when it installs and watches a node.

use serde::{Deserialize, Serialize};

/// The settings; a field left out takes its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Default GPU mode of deployments that name none: `mono` (one engine
    /// on all GPUs) or `multi` (one engine per GPU behind HAProxy).
    pub mode: String,
    /// Port serving the OpenAI API on the node (1024 to 65519): its relay
    /// (TLS, per-instance key); the engines listen on loopback on the next
    /// ports (one per GPU, up to 16).
    pub engine_port: u16,
    /// Port of the worker agent on the node (1024 to 65535, not the engine
    /// port nor one of the 16 after it).
    pub agent_port: u16,
    /// A node not ready this long after its deployment or reinstall fails
    /// (60 to 7200 seconds).
    pub startup_timeout_secs: u32,
    /// SSH bootstrap attempts before giving up (1 to 10).
    pub bootstrap_attempts: u8,
    /// A node whose control plane has answered nothing for this long, with
    /// no request in flight, powers itself off so that it stops costing
    /// money: 0 (never) or 300 to 86400 seconds. Not on the mock provider.
    pub dead_man_after_s: u32,
    /// On Scaleway, power the node off through Scaleway's API, which stops
    /// the compute billing (an in-guest shutdown leaves the server "stopped
    /// in place", still billed). Opt-in: it puts the organization's own
    /// Scaleway secret key on the node (a file only the agent can read), the
    /// node being the organization's own server in its own account.
    pub dead_man_poweroff: bool,
}

impl Default for WorkerSettings {
    fn default() -> WorkerSettings {
        WorkerSettings {
            mode: "mono".into(),
            engine_port: 8000,
            agent_port: 8090,
            startup_timeout_secs: 900,
            bootstrap_attempts: 3,
            dead_man_after_s: 1800,
            dead_man_poweroff: false,
        }
    }
}

/// The most engines a node runs (multi mode: one per GPU), on the ports
/// after `engine_port`.
pub const ENGINES_MAX: u16 = 16;

impl WorkerSettings {
    /// The first field out of bounds, with what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        if !["mono", "multi"].contains(&self.mode.as_str()) {
            return Err("mode: mono or multi".into());
        }
        if !(1024..=u16::MAX - ENGINES_MAX).contains(&self.engine_port) {
            // 65535 - ENGINES_MAX, spelled out: the dashboard shows the same words.
            return Err("engine_port: 1024 to 65519".into());
        }
        if self.agent_port < 1024 {
            return Err("agent_port: 1024 to 65535".into());
        }
        if (self.engine_port..=self.engine_port + ENGINES_MAX).contains(&self.agent_port) {
            return Err(
                "agent_port: must differ from engine_port and the 16 ports after it (the engines')"
                    .into(),
            );
        }
        if !(60..=7200).contains(&self.startup_timeout_secs) {
            return Err("startup_timeout_secs: 60 to 7200".into());
        }
        if !(1..=10).contains(&self.bootstrap_attempts) {
            return Err("bootstrap_attempts: 1 to 10".into());
        }
        if self.dead_man_after_s != 0 && !(300..=86_400).contains(&self.dead_man_after_s) {
            return Err("dead_man_after_s: 0 (never) or 300 to 86400".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change to the defaults and the field it must be refused for.
    type Case = (fn(&mut WorkerSettings), &'static str);

    #[test]
    fn defaults_are_valid_and_bounds_are_enforced() {
        assert_eq!(WorkerSettings::default().validate(), Ok(()));
        assert_eq!(u16::MAX - ENGINES_MAX, 65_519, "the messages spell it out");
        let table: [Case; 11] = [
            (|s| s.mode = "dual".into(), "mode"),
            (|s| s.engine_port = 80, "engine_port"),
            (|s| s.engine_port = 65_520, "engine_port"),
            (|s| s.agent_port = 1023, "agent_port"),
            (|s| s.agent_port = s.engine_port, "agent_port"),
            (|s| s.agent_port = s.engine_port + 1, "agent_port"),
            (|s| s.agent_port = s.engine_port + 16, "agent_port"),
            (|s| s.startup_timeout_secs = 59, "startup_timeout_secs"),
            (|s| s.bootstrap_attempts = 11, "bootstrap_attempts"),
            (|s| s.dead_man_after_s = 299, "dead_man_after_s"),
            (|s| s.dead_man_after_s = 86_401, "dead_man_after_s"),
        ];
        for (change, field) in table {
            let mut s = WorkerSettings::default();
            change(&mut s);
            let err = s.validate().err().unwrap_or_default();
            assert!(err.starts_with(field), "{field}: {err}");
        }
        for after_s in [0, 300, 86_400] {
            let s = WorkerSettings {
                dead_man_after_s: after_s,
                ..WorkerSettings::default()
            };
            assert_eq!(s.validate(), Ok(()), "{after_s}");
        }
    }

    #[test]
    fn settings_stored_before_a_field_existed_read_as_its_default() {
        let old = serde_json::json!({ "mode": "multi", "engine_port": 8100 });
        let read = serde_json::from_value::<WorkerSettings>(old).map_err(|e| e.to_string());
        let expected = WorkerSettings {
            mode: "multi".into(),
            engine_port: 8100,
            dead_man_after_s: 1800,
            dead_man_poweroff: false,
            ..WorkerSettings::default()
        };
        assert_eq!(read, Ok(expected));
    }
}
