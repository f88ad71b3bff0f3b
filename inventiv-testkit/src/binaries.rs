//! The workspace's binaries for tests that run them as processes: built
//! once per test process with cargo, into the target directory the running
//! test was built in, so a test never runs a stale binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The path of binary `bin` of workspace package `package`, after
/// `cargo build -p PACKAGE --bin BIN` (the first call per process for that
/// binary; later calls return the same path without building).
pub fn cargo_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    // Held while building: concurrent tests wait for one build, not start two.
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (package.to_owned(), bin.to_owned());
    if let Some(path) = built.get(&key) {
        return path.clone();
    }
    let (target_dir, profile) = target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", package, "--bin", bin, "--target-dir"])
        .arg(&target_dir)
        .current_dir(repo());
    // `debug` is the directory of the `dev` profile.
    if profile != "debug" {
        cmd.args(["--profile", &profile]);
    }
    let status = cmd.status().expect("cargo");
    assert!(
        status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    let path = target_dir
        .join(&profile)
        .join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    built.insert(key, path.clone());
    path
}

/// The target directory and profile directory name of the running test
/// (`target/debug/deps/it-…` gives `target` and `debug`); outside cargo's
/// layout, `CARGO_TARGET_DIR` (else the workspace's `target`) and `debug`.
fn target() -> (PathBuf, String) {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        if deps.file_name()? != "deps" {
            return None;
        }
        let profile = deps.parent()?;
        let name = profile.file_name()?.to_str()?.to_owned();
        Some((profile.parent()?.to_path_buf(), name))
    });
    from_exe.unwrap_or_else(|| {
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target"));
        (dir, "debug".into())
    })
}
