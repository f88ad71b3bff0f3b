//! What a node sends back over SSH is bounded: a tenant is root on its
//! node, and a command that floods its output (or one line without end)
//! is stopped at `OUTPUT_MAX` bytes instead of filling the control plane's
//! memory. Against a real sshd.

use std::time::Duration;

use inventiv_orchestrator::node::ssh::{Session, Ssh, SshError, Target, OUTPUT_MAX};
use inventiv_testkit::sshd::Sshd;
use uuid::Uuid;

async fn session(sshd: &Sshd) -> Session {
    let ssh = Ssh {
        key: sshd.client_key.clone(),
        work_dir: sshd.dir.join("client"),
        connect_timeout: Duration::from_secs(5),
    };
    let target = Target {
        host: sshd.address.to_string(),
        port: sshd.port,
        user: sshd.user.clone(),
    };
    ssh.session(Uuid::new_v4(), target, None).await.unwrap()
}

#[tokio::test]
async fn output_past_the_bound_stops_the_command_and_output_within_it_is_read_whole() {
    let sshd = Sshd::start().await;
    let session = session(&sshd).await;
    let within = session
        .run(&format!("head -c {OUTPUT_MAX} /dev/zero"), b"")
        .await
        .unwrap();
    assert_eq!(within.len(), OUTPUT_MAX);
    // An endless stream, on stdout then on stderr: stopped, not read to the end.
    for flood in ["yes", "yes >&2"] {
        let err = tokio::time::timeout(Duration::from_secs(30), session.run(flood, b""))
            .await
            .expect("stopped at the bound, not read forever");
        assert!(matches!(err, Err(SshError::Oversized)), "{flood}: {err:?}");
    }
}

#[tokio::test]
async fn a_streamed_line_past_the_bound_is_refused_and_lines_within_it_are_read() {
    let sshd = Sshd::start().await;
    let session = session(&sshd).await;
    let mut out = session.stream("printf 'one\\r\\ntwo\\n'").unwrap();
    assert_eq!(out.next_line().await.unwrap().as_deref(), Some("one"));
    assert_eq!(out.next_line().await.unwrap().as_deref(), Some("two"));
    assert_eq!(out.next_line().await.unwrap(), None);
    out.finish().await.unwrap();
    // One line without end.
    let mut out = session.stream("tr -d '\\n' < /dev/zero").unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), out.next_line())
        .await
        .expect("stopped at the bound");
    assert!(matches!(err, Err(SshError::Oversized)), "{err:?}");
}
