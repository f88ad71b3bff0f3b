//! The other stored statuses the API answers with: action-log steps,
//! volumes, shares, key priorities and invitations. Each column's CHECK constraint lists
//! exactly these values (a test compares them).

stored_enum! {
    /// How a step of an instance's action log went (`action_logs.status`).
    pub enum ActionStatus {
        InProgress = "in_progress",
        Success = "success",
        Failed = "failed",
    }
}

stored_enum! {
    /// Where a cloud volume stands (`instance_volumes.status`).
    pub enum VolumeStatus {
        /// Attached to its instance.
        Attached = "attached",
        /// Removed by us.
        Deleted = "deleted",
        /// Vanished at the provider.
        Missing = "missing",
    }
}

stored_enum! {
    /// Whether a share of an offering may be used (`offering_shares.status`).
    pub enum ShareStatus {
        Active = "active",
        Paused = "paused",
        /// Final: the consumer no longer sees the offering.
        Revoked = "revoked",
    }
}

stored_enum! {
    /// The priority band of an API key's requests on a saturated
    /// deployment (`api_keys.priority`): interactive ones are admitted
    /// before batch ones, which wait a bounded time or get 429.
    pub enum KeyPriority {
        Interactive = "interactive",
        /// Best effort: leaves some capacity to interactive requests.
        Batch = "batch",
    }
}

stored_enum! {
    /// Where an invitation stands, derived from its timestamps.
    pub enum InvitationStatus {
        Pending = "pending",
        Accepted = "accepted",
        Revoked = "revoked",
        Expired = "expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_serde_and_display() {
        fn check<T>(all: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
        where
            T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + serde::Serialize,
        {
            for &v in all {
                assert_eq!(parse(as_str(v)), Some(v));
                assert_eq!(v.to_string(), as_str(v));
                assert_eq!(
                    serde_json::to_value(v).ok(),
                    Some(serde_json::Value::from(as_str(v)))
                );
            }
        }
        check(
            &ActionStatus::ALL,
            ActionStatus::as_str,
            ActionStatus::parse,
        );
        check(
            &VolumeStatus::ALL,
            VolumeStatus::as_str,
            VolumeStatus::parse,
        );
        check(&ShareStatus::ALL, ShareStatus::as_str, ShareStatus::parse);
        check(&KeyPriority::ALL, KeyPriority::as_str, KeyPriority::parse);
        check(
            &InvitationStatus::ALL,
            InvitationStatus::as_str,
            InvitationStatus::parse,
        );
        check(
            &crate::InstanceStatus::ALL,
            crate::InstanceStatus::as_str,
            crate::InstanceStatus::parse,
        );
        check(
            &crate::worker::WorkerStatus::ALL,
            crate::worker::WorkerStatus::as_str,
            crate::worker::WorkerStatus::parse,
        );
        assert_eq!(ShareStatus::parse("Active"), None);
    }
}
