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

/// A host shape: `count` GPUs of one model and memory, the instance type
/// of the `ssh` provider (e.g. `2x-nvidia-l4-22g`). A host of n GPUs
/// offers the shapes of 1 to n of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub count: i32,
    pub gpu_model: String,
    /// Per GPU, in whole GiB (rounded down), as the catalog counts VRAM.
    pub vram_gb: i32,
}

impl Shape {
    /// The instance type code: count, model slug (lowercase letters and
    /// digits, other runs as one `-`), memory.
    pub fn code(&self) -> String {
        let mut slug = String::new();
        for c in self.gpu_model.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug: String = slug.trim_end_matches('-').chars().take(40).collect();
        format!(
            "{}x-{}-{}g",
            self.count,
            slug.trim_end_matches('-'),
            self.vram_gb
        )
    }

    /// The shapes a host of `gpu_count` GPUs offers (none without GPUs).
    pub fn offered(gpu_count: i32, gpu_model: &str, vram_mib: i32) -> Vec<Shape> {
        (1..=gpu_count.clamp(0, MAX_GPUS))
            .map(|count| Shape {
                count,
                gpu_model: gpu_model.to_owned(),
                vram_gb: vram_mib / 1024,
            })
            .collect()
    }
}

/// Where one more engine goes on a host: which GPUs (indices as
/// nvidia-smi numbers them) and which slot (its ports are the worker
/// settings' ports shifted by [`PORT_STRIDE`] × slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub gpus: Vec<i32>,
    pub slot: i32,
}

/// How far apart the ports of two engines sharing a host are: wider than
/// the span of one worker's ports (agent, relay, up to 16 engines).
pub const PORT_STRIDE: i32 = 100;

/// The lowest free GPU indices and the lowest free slot for an engine of
/// `count` GPUs on a host of `gpu_count`, given the seats already taken;
/// None when it does not fit.
pub fn seat(gpu_count: i32, count: i32, taken: &[Seat]) -> Option<Seat> {
    if count < 1 {
        return None;
    }
    let busy = |g: &i32| taken.iter().any(|s| s.gpus.contains(g));
    let gpus: Vec<i32> = (0..gpu_count)
        .filter(|g| !busy(g))
        .take(usize::try_from(count).ok()?)
        .collect();
    if i32::try_from(gpus.len()).ok()? < count {
        return None;
    }
    let slot = (0..).find(|n| taken.iter().all(|s| s.slot != *n))?;
    Some(Seat { gpus, slot })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
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

    #[test]
    fn shapes_and_codes() {
        let shapes = Shape::offered(2, "NVIDIA L4", 23034);
        let codes: Vec<String> = shapes.iter().map(Shape::code).collect();
        assert_eq!(codes, ["1x-nvidia-l4-22g", "2x-nvidia-l4-22g"]);
        assert_eq!(
            Shape::offered(1, "NVIDIA H100 80GB HBM3", 81559)[0].code(),
            "1x-nvidia-h100-80gb-hbm3-79g"
        );
        assert!(Shape::offered(0, "x", 2048).is_empty());
    }

    #[test]
    fn seats_never_share_a_gpu_or_a_slot() {
        let a = seat(2, 1, &[]).unwrap();
        assert_eq!(
            a,
            Seat {
                gpus: vec![0],
                slot: 0
            }
        );
        let b = seat(2, 1, std::slice::from_ref(&a)).unwrap();
        assert_eq!(
            b,
            Seat {
                gpus: vec![1],
                slot: 1
            }
        );
        assert_eq!(seat(2, 1, &[a.clone(), b.clone()]), None);
        assert_eq!(seat(2, 2, std::slice::from_ref(&a)), None);
        // A freed middle slot and GPU are reused first.
        let c = seat(4, 2, std::slice::from_ref(&b)).unwrap();
        assert_eq!(
            c,
            Seat {
                gpus: vec![0, 2],
                slot: 0
            }
        );
        assert_eq!(seat(4, 0, &[]), None);
        // Every mix of engines on up to 4 GPUs: disjoint GPUs and slots.
        for sizes in [
            [1, 1, 1, 1],
            [2, 1, 1, 0],
            [1, 2, 1, 0],
            [3, 1, 0, 0],
            [4, 0, 0, 0],
        ] {
            let mut taken: Vec<Seat> = Vec::new();
            for n in sizes.into_iter().filter(|n| *n > 0) {
                let s = seat(4, n, &taken).unwrap();
                for t in &taken {
                    assert!(t.gpus.iter().all(|g| !s.gpus.contains(g)) && t.slot != s.slot);
                }
                taken.push(s);
            }
            assert_eq!(seat(4, 1, &taken), None);
        }
    }
}
