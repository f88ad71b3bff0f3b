//! An organization's own GPU servers (the `ssh` provider): where a host
//! stands, which moves the API and the control plane make, and the bounds
//! the API enforces and the database CHECKs mirror (migration
//! `20261212002001_hosts.sql`).

stored_enum! {
    /// Where a host stands (`hosts.status`).
    pub enum HostStatus {
        /// Declared; never reached with the organization's key.
        Registered = "registered",
        /// Reached with the organization's key; its host key is pinned.
        Verified = "verified",
        /// Holds instances.
        InUse = "in_use",
        /// Nothing new goes there (maintenance); what runs stays.
        Draining = "draining",
        /// The last verification failed, or met another host key.
        Unreachable = "unreachable",
        /// Final: kept for its history.
        Removed = "removed",
    }
}

/// How a verification ended, as far as the status is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Logged in with the organization's key, host key as pinned (or pinned now).
    Reached,
    /// No answer, or the login was refused.
    Unreached,
    /// The host presented another key than the pinned one.
    KeyChanged,
}

impl HostStatus {
    /// The status after a verification. A draining host stays draining
    /// (the admin's intent outlives its reachability); a host in use stays
    /// in use when reached. None: a removed host is not verified.
    pub fn after_verification(self, reach: Reach) -> Option<HostStatus> {
        use HostStatus::*;
        Some(match (self, reach) {
            (Removed, _) => return None,
            (Draining, _) => Draining,
            (InUse, Reach::Reached) => InUse,
            (_, Reach::Reached) => Verified,
            (_, Reach::Unreached | Reach::KeyChanged) => Unreachable,
        })
    }

    /// Whether a drain applies (None: it does not; the same status: nothing to do).
    pub fn after_drain(self) -> Option<HostStatus> {
        match self {
            HostStatus::Removed => None,
            _ => Some(HostStatus::Draining),
        }
    }

    /// The status a drained host returns to, from what its last
    /// verification said (None: it was not draining).
    pub fn after_undrain(self, last_check_ok: Option<bool>) -> Option<HostStatus> {
        if self != HostStatus::Draining {
            return None;
        }
        Some(match last_check_ok {
            None => HostStatus::Registered,
            Some(true) => HostStatus::Verified,
            Some(false) => HostStatus::Unreachable,
        })
    }

    /// Whether a removal is allowed now (a host in use is not removed).
    pub fn removable(self) -> bool {
        self != HostStatus::InUse
    }
}

/// `label`: 1 to this many characters.
pub const MAX_LABEL: usize = 100;
/// `pool`: 1 to this many characters, letters, digits, `-`, `_`, `.`.
pub const MAX_POOL: usize = 63;
/// `address`: a host name or an IP address, at most this long.
pub const MAX_ADDRESS: usize = 253;
/// `ssh_user`: a POSIX user name, at most this long.
pub const MAX_SSH_USER: usize = 32;
/// `gpu_count`: 0 to this.
pub const MAX_GPUS: i32 = 16;
/// `gpu_model`: at most this long.
pub const MAX_GPU_MODEL: usize = 100;
/// `gpu_vram_mib`: from 1 GiB to 1 TiB per GPU.
pub const VRAM_MIB: std::ops::RangeInclusive<i32> = 1024..=1_048_576;
/// The default SSH port.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// Whether `pool` is a pool name (the zone of the `ssh` provider).
pub fn valid_pool(pool: &str) -> bool {
    (1..=MAX_POOL).contains(&pool.len())
        && pool
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `user` is a user name ssh can be given on a command line
/// (POSIX portable: letters, digits, `.`, `_`, `-`, not starting with `-`).
pub fn valid_ssh_user(user: &str) -> bool {
    (1..=MAX_SSH_USER).contains(&user.len())
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `address` is an IP address or a DNS name (labels of letters,
/// digits and `-`, not starting or ending with `-`); never something ssh
/// would read as an option or a user.
pub fn valid_address(address: &str) -> bool {
    if address.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    (1..=MAX_ADDRESS).contains(&address.len())
        && address.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::HostStatus::*;
    use super::*;

    #[test]
    fn verification_moves() {
        assert_eq!(
            Registered.after_verification(Reach::Reached),
            Some(Verified)
        );
        assert_eq!(
            Unreachable.after_verification(Reach::Reached),
            Some(Verified)
        );
        assert_eq!(
            Verified.after_verification(Reach::Unreached),
            Some(Unreachable)
        );
        assert_eq!(
            Verified.after_verification(Reach::KeyChanged),
            Some(Unreachable)
        );
        assert_eq!(InUse.after_verification(Reach::Reached), Some(InUse));
        assert_eq!(
            InUse.after_verification(Reach::Unreached),
            Some(Unreachable)
        );
        assert_eq!(
            Draining.after_verification(Reach::Unreached),
            Some(Draining)
        );
        assert_eq!(Removed.after_verification(Reach::Reached), None);
    }

    #[test]
    fn drain_undrain_remove() {
        assert_eq!(Verified.after_drain(), Some(Draining));
        assert_eq!(Draining.after_drain(), Some(Draining));
        assert_eq!(Removed.after_drain(), None);
        assert_eq!(Draining.after_undrain(None), Some(Registered));
        assert_eq!(Draining.after_undrain(Some(true)), Some(Verified));
        assert_eq!(Draining.after_undrain(Some(false)), Some(Unreachable));
        assert_eq!(Verified.after_undrain(Some(true)), None);
        assert!(!InUse.removable());
        assert!(Draining.removable());
    }

    #[test]
    fn names() {
        assert!(valid_pool("paris-rack-2"));
        assert!(!valid_pool(""));
        assert!(!valid_pool("a b"));
        assert!(!valid_pool(&"p".repeat(64)));
        assert!(valid_ssh_user("ubuntu"));
        assert!(!valid_ssh_user("-oProxyCommand=x"));
        assert!(!valid_ssh_user("a@b"));
        assert!(valid_address("10.0.0.7"));
        assert!(valid_address("::1"));
        assert!(valid_address("gpu-1.rack.example.com"));
        assert!(!valid_address("-oProxyCommand=x"));
        assert!(!valid_address("user@host"));
        assert!(!valid_address("a..b"));
        assert!(!valid_address(""));
    }
}
