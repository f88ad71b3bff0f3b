//! The mock engine binary for tests that run one (built on first use).

use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn repo() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `INVENTIV_MOCK_ENGINE`, or the workspace's debug build of
/// `inventiv-mock-engine` (built when missing).
pub fn mock_engine() -> PathBuf {
    if let Ok(path) = std::env::var("INVENTIV_MOCK_ENGINE") {
        return PathBuf::from(path);
    }
    let path = repo().join("target/debug/inventiv-mock-engine");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "inventiv-mock-engine"])
            .current_dir(repo())
            .status()
            .expect("cargo");
        assert!(status.success(), "building inventiv-mock-engine failed");
    }
    path
}
