//! The orchestrator had no check on the credentials key: it ran on the
//! public development key whenever none was set. It now refuses a missing
//! or built-in key unless INVENTIV_INSECURE_DEVELOPMENT=1 on loopback.

use std::process::{Command, Stdio};

/// Runs the orchestrator binary with only `vars` (and an unreachable
/// database, so that an accepted configuration fails later, on connecting);
/// returns its exit success and its output.
fn run(vars: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_inventiv-orchestrator"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:9/none")
        .env("REDIS_URL", "redis://127.0.0.1:9/")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_built_in_credentials_key_is_refused() {
    let dev = inventiv_store::crypto::DEV_KEY;
    for vars in [
        vec![],
        vec![("INVENTIV_ENCRYPTION_KEY", dev)],
        vec![
            ("INVENTIV_INSECURE_DEVELOPMENT", "1"),
            ("INVENTIV_ORCHESTRATOR_ADDR", "0.0.0.0:0"),
        ],
        vec![
            ("INVENTIV_INSECURE_DEVELOPMENT", "1"),
            ("INVENTIV_ENV", "production"),
        ],
    ] {
        let (ok, text) = run(&vars);
        assert!(!ok, "{vars:?} started");
        assert!(
            text.contains("INVENTIV_ENCRYPTION_KEY")
                || text.contains("INVENTIV_INSECURE_DEVELOPMENT"),
            "{vars:?} failed for another reason: {text}"
        );
        assert!(
            !text.contains("cannot connect to the database"),
            "{vars:?}: {text}"
        );
    }
    // The explicit development flag on loopback, or a random key: the
    // configuration passes (it then fails on the unreachable database).
    let random = "3f9c2b7e5a1d4c8f0e6b2a9d7c5e3f1a8b6d4c2e0f9a7b5c3d1e8f6a4b2c0d9e";
    for vars in [
        vec![("INVENTIV_INSECURE_DEVELOPMENT", "1")],
        vec![("INVENTIV_ENCRYPTION_KEY", random)],
    ] {
        let (ok, text) = run(&vars);
        assert!(!ok);
        assert!(
            text.contains("cannot connect to the database"),
            "{vars:?}: {text}"
        );
    }
}
