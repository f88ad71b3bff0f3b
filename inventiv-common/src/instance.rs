//! The instance state machine: the states, the legal transitions between
//! them (the one place they are decided), and the progress milestones the
//! dashboard shows.

stored_enum! {
    /// Where an instance is in its life.
    pub enum InstanceStatus {
        Provisioning = "provisioning",
        Booting = "booting",
        Installing = "installing",
        Starting = "starting",
        Ready = "ready",
        Draining = "draining",
        Terminating = "terminating",
        Terminated = "terminated",
        ProvisioningFailed = "provisioning_failed",
        StartupFailed = "startup_failed",
        WorkerDead = "worker_dead",
        Archived = "archived",
    }
}

use InstanceStatus::*;

impl InstanceStatus {
    /// The states this one may move to.
    pub fn next(self) -> &'static [InstanceStatus] {
        match self {
            Provisioning => &[Booting, ProvisioningFailed, Terminating],
            Booting => &[Installing, ProvisioningFailed, StartupFailed, Terminating],
            Installing => &[Starting, StartupFailed, Terminating],
            Starting => &[Ready, StartupFailed, Terminating],
            Ready => &[Draining, WorkerDead, Terminating],
            Draining => &[Ready, Terminating],
            // Recoverable failures: reinstall, the worker coming back, or terminate.
            WorkerDead => &[Installing, Ready, Terminating],
            StartupFailed => &[Installing, Terminating],
            ProvisioningFailed => &[Terminating],
            Terminating => &[Terminated],
            Terminated => &[Archived],
            Archived => &[],
        }
    }

    /// Whether the orchestrator has nothing left to do for it.
    pub fn is_final(self) -> bool {
        matches!(self, Terminated | Archived)
    }

    /// Whether it is a failure state (which keeps an error code and message).
    pub fn is_failure(self) -> bool {
        matches!(self, ProvisioningFailed | StartupFailed | WorkerDead)
    }
}

/// The outcome of asking for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The status changes.
    Changed,
    /// Already there: nothing to do (repeating a step is harmless).
    Unchanged,
}

/// An illegal transition, e.g. `terminated → ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal instance transition {from} → {to}")]
pub struct IllegalTransition {
    pub from: InstanceStatus,
    pub to: InstanceStatus,
}

/// Decides whether `from → to` is allowed.
pub fn transition(
    from: InstanceStatus,
    to: InstanceStatus,
) -> Result<Transition, IllegalTransition> {
    if from == to {
        Ok(Transition::Unchanged)
    } else if from.next().contains(&to) {
        Ok(Transition::Changed)
    } else {
        Err(IllegalTransition { from, to })
    }
}

/// A step of the validated provisioning sequence and the progress (0-100)
/// the instance has reached once it completes. The order is the contract
/// the dashboard shows.
pub const MILESTONES: [(&str, i16); 10] = [
    ("PROVIDER_CREATE", 10),
    ("PROVIDER_VOLUME_RESIZE", 25),
    ("PROVIDER_START", 35),
    ("PROVIDER_SECURITY_GROUP", 45),
    ("WORKER_SSH_ACCESSIBLE", 50),
    ("WORKER_SSH_INSTALL", 60),
    ("WORKER_VLLM_HTTP_OK", 75),
    ("WORKER_MODEL_LOADED", 85),
    ("WORKER_VLLM_WARMUP", 95),
    ("HEALTH_CHECK", 100),
];

/// The progress reached once `action_type` completes, if it is a milestone.
pub fn milestone_progress(action_type: &str) -> Option<i16> {
    MILESTONES
        .iter()
        .find(|(name, _)| *name == action_type)
        .map(|(_, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is the spec: (from, to, legal).
    const CASES: &[(InstanceStatus, InstanceStatus, bool)] = &[
        (Provisioning, Booting, true),
        (Booting, Installing, true),
        (Installing, Starting, true),
        (Starting, Ready, true),
        (Ready, Draining, true),
        (Draining, Terminating, true),
        (Terminating, Terminated, true),
        (Terminated, Archived, true),
        (Ready, WorkerDead, true),
        (WorkerDead, Installing, true),
        (WorkerDead, Ready, true),
        (StartupFailed, Installing, true),
        (ProvisioningFailed, Terminating, true),
        (Provisioning, Ready, false),
        (Terminated, Ready, false),
        (Terminated, Terminating, false),
        (Archived, Terminated, false),
        (Ready, Installing, false),
        (ProvisioningFailed, Installing, false),
        (Terminating, Ready, false),
    ];

    #[test]
    fn transitions_follow_the_table() {
        for &(from, to, legal) in CASES {
            assert_eq!(transition(from, to).is_ok(), legal, "{from} -> {to}");
        }
    }

    #[test]
    fn repeating_is_a_no_op_and_everything_can_end() {
        for s in InstanceStatus::ALL {
            assert_eq!(transition(s, s), Ok(Transition::Unchanged));
            assert_eq!(InstanceStatus::parse(s.as_str()), Some(s));
            if !s.is_final() {
                assert!(
                    transition(s, Terminating).is_ok() || s == Terminating,
                    "{s} can be terminated"
                );
            }
        }
        assert!(Archived.next().is_empty());
    }

    #[test]
    fn milestones_increase() {
        assert!(MILESTONES.windows(2).all(|w| w[0].1 < w[1].1));
        assert_eq!(milestone_progress("HEALTH_CHECK"), Some(100));
        assert_eq!(milestone_progress("WORKER_SSH_PYTHON_VENV"), None);
    }
}
