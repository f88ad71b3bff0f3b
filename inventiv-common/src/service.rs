//! Services: a model served by a number of replicas (instances) that moves
//! between bounds. The states, the kinds of events of a service's timeline,
//! and the bounds the API enforces and the database CHECKs mirror
//! (migration `20261211001001_services.sql`).

stored_enum! {
    /// Where a service is in its life (`services.state`).
    pub enum ServiceState {
        /// Its replicas follow `desired_replicas`, within `[min, max]`.
        Active = "active",
        /// Desired 0: its replicas were terminated; resume brings back `min`.
        Paused = "paused",
        /// Its replicas are terminating; `deleted` once none is left.
        Deleting = "deleting",
        /// Final: no replica left.
        Deleted = "deleted",
    }
}

stored_enum! {
    /// What an entry of a service's timeline records (`service_events.kind`).
    pub enum ServiceEventKind {
        Created = "created",
        /// Its policy, bounds, name or placements changed.
        Updated = "updated",
        Paused = "paused",
        Resumed = "resumed",
        Deleting = "deleting",
        Deleted = "deleted",
        /// The autoscaler changed `desired_replicas`.
        Scaled = "scaled",
        ReplicaCreated = "replica_created",
        ReplicaTerminated = "replica_terminated",
        /// A replica could not be created in a placement (capacity, quota).
        PlacementFailed = "placement_failed",
        /// A scale-up was refused by the service's budget cap.
        BudgetCapped = "budget_capped",
        /// A rollout raised the revision: the outdated replicas are replaced one at a time.
        RolloutStarted = "rollout_started",
        /// No outdated replica is left.
        RolloutFinished = "rollout_finished",
    }
}

impl ServiceState {
    /// Whether the service takes no more changes of policy or state.
    pub fn is_ending(self) -> bool {
        matches!(self, ServiceState::Deleting | ServiceState::Deleted)
    }
}

/// Most replicas a service may have (`max_replicas`).
pub const MAX_REPLICAS: i32 = 16;
/// Placements a service lists, at least one.
pub const MAX_PLACEMENTS: usize = 8;
/// `target_outstanding`: above 0, at most this (requests per replica).
pub const MAX_TARGET_OUTSTANDING: f64 = 1000.0;
/// `target_ttft_p95_ms`: 1 to this.
pub const MAX_TARGET_TTFT_P95_MS: i32 = 600_000;
/// `idle_window_s`: 1 to this (a week); default 900.
pub const MAX_IDLE_WINDOW_S: i32 = 604_800;
/// Default `idle_window_s`.
pub const DEFAULT_IDLE_WINDOW_S: i32 = 900;
/// `scale_down_cooldown_s`: 0 to this (a day); default 300.
pub const MAX_SCALE_DOWN_COOLDOWN_S: i32 = 86_400;
/// Default `scale_down_cooldown_s`.
pub const DEFAULT_SCALE_DOWN_COOLDOWN_S: i32 = 300;
