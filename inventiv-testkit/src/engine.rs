//! The mock engine binary for tests that run one (built on first use).

use std::path::PathBuf;

/// `INVENTIV_MOCK_ENGINE`, or the workspace's build of
/// `inventiv-mock-engine` (see [`crate::binaries::cargo_bin`]).
pub fn mock_engine() -> PathBuf {
    if let Ok(path) = std::env::var("INVENTIV_MOCK_ENGINE") {
        return PathBuf::from(path);
    }
    crate::binaries::cargo_bin("inventiv-mock-engine", "inventiv-mock-engine")
}
