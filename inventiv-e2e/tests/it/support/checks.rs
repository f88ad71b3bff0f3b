//! What tests look at: the instance in the database, its action log, the
//! mock VMs and volumes on disk, the processes of a node; and the checks
//! every converged instance must pass.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use uuid::Uuid;

use super::{processes_mentioning, Stack, MODEL};

/// Asserts that each of `milestones` is in `done` (the action types that
/// succeeded, in order), and in this order.
pub fn assert_in_order(done: &[String], milestones: &[&str]) {
    let positions: Vec<usize> = milestones
        .iter()
        .map(|m| {
            done.iter()
                .position(|d| d == m)
                .unwrap_or_else(|| panic!("{m} missing from {done:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "milestones out of order: {done:?}"
    );
}

/// Every regular file under `dir` (symbolic links not followed).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found
}

/// One mock VM found on disk.
#[derive(Debug, Clone)]
pub struct Vm {
    pub dir: PathBuf,
    pub provider_id: String,
    pub instance_id: Option<Uuid>,
}

impl Stack {
    /// How many times an orchestrator logged creating a VM for `instance`.
    pub fn vm_creations_logged(&self, instance: Uuid) -> usize {
        let id = instance.to_string();
        std::fs::read_dir(self.state_dir.join("logs"))
            .map(|d| {
                d.flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .map(|body| {
                        body.lines()
                            .filter(|l| l.contains("mock VM created") && l.contains(&id))
                            .count()
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The mock VMs on disk now.
    pub fn vms(&self) -> Vec<Vm> {
        let Ok(dir) = std::fs::read_dir(self.state_dir.join("mock-vms")) else {
            return Vec::new();
        };
        let mut vms: Vec<Vm> = dir
            .flatten()
            // Named by their provider id, as the mock lists them.
            .filter(|e| {
                e.path().is_dir() && Uuid::parse_str(&e.file_name().to_string_lossy()).is_ok()
            })
            .map(|e| {
                let record: Option<Value> = std::fs::read(e.path().join("vm.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                Vm {
                    dir: e.path(),
                    provider_id: e.file_name().to_string_lossy().into_owned(),
                    instance_id: record
                        .and_then(|r| r["instance_id"].as_str().map(str::to_owned))
                        .and_then(|s| Uuid::parse_str(&s).ok()),
                }
            })
            .collect();
        vms.sort_by(|a, b| a.dir.cmp(&b.dir));
        vms
    }

    /// The mock volumes on disk now (file names), of `instance` only when given.
    pub fn volumes(&self, instance: Option<Uuid>) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.state_dir.join("mock-volumes")) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| {
                instance.is_none_or(|id| {
                    // Its tags name the instance.
                    std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&id.to_string()))
                })
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    pub async fn status(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// The instance's row and action log, for failure messages.
    pub async fn describe(&self, id: Uuid) -> String {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT concat_ws(' ', status, 'progress=' || progress, 'server=' || provider_server_id,
                    'lease=' || lease_owner, 'bootstrap_attempts=' || bootstrap_attempts,
                    error_code, error_message)
               FROM instances WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .unwrap();
        let actions: Vec<String> = self
            .actions(id)
            .await
            .into_iter()
            .map(|a| format!("{} {} {}", a.0, a.1, a.2))
            .collect();
        format!(
            "instance {id}: {row:?}\nactions:\n  {}",
            actions.join("\n  ")
        )
    }

    /// (action type, status, metadata) of every action logged, in order.
    pub async fn actions(&self, id: Uuid) -> Vec<(String, String, Value)> {
        sqlx::query_as(
            "SELECT action_type, status || ' ' || COALESCE(duration_ms::text || ' ms', '') || ' ' || COALESCE(error_code, ''),
                    metadata FROM action_logs WHERE instance_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await
        .unwrap()
    }

    /// What the last successful bootstrap of `id` recorded (its
    /// `WORKER_SSH_INSTALL` action's metadata: the install dir, ...).
    pub async fn installed(&self, id: Uuid) -> Value {
        self.actions(id)
            .await
            .into_iter()
            .rev()
            .find(|(kind, status, _)| kind == "WORKER_SSH_INSTALL" && status.starts_with("success"))
            .map(|(_, _, metadata)| metadata)
            .expect("WORKER_SSH_INSTALL succeeded")
    }

    /// Waits until the instance has status `want`; a final or failed status
    /// other than the one wanted fails at once.
    pub async fn wait_status(&self, id: Uuid, want: &str, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            let status = self.status(id).await;
            if status == want {
                return;
            }
            let stuck = [
                "provisioning_failed",
                "startup_failed",
                "terminated",
                "archived",
            ]
            .contains(&status.as_str());
            if stuck || Instant::now() > until {
                panic!(
                    "instance not {want} (is {status}) after {deadline:?}\n{}\n{}",
                    self.describe(id).await,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The checks every converged instance must pass: ready at 100 %,
    /// exactly one VM (its own), created once, one agent, no step left open.
    pub async fn assert_ready_once(&self, id: Uuid) {
        let (progress, server): (i16, Option<String>) =
            sqlx::query_as("SELECT progress, provider_server_id FROM instances WHERE id = $1")
                .bind(id)
                .fetch_one(&self.db)
                .await
                .unwrap();
        let about = self.describe(id).await;
        assert_eq!(progress, 100, "{about}");
        let mine: Vec<Vm> = self
            .vms()
            .into_iter()
            .filter(|v| v.instance_id == Some(id))
            .collect();
        assert_eq!(mine.len(), 1, "one VM for {id}: {mine:?}\n{about}");
        assert_eq!(Some(&mine[0].provider_id), server.as_ref(), "{about}");
        // A create killed before it returned logs nothing: at most once.
        assert!(
            self.vm_creations_logged(id) <= 1,
            "the VM of {id} was created more than once\n{about}"
        );
        let actions = self.actions(id).await;
        let created = actions
            .iter()
            .filter(|a| {
                a.0 == "PROVIDER_CREATE" && a.1.starts_with("success") && a.2["adopted"] != true
            })
            .count();
        assert!(created <= 1, "PROVIDER_CREATE twice\n{about}");
        assert!(
            actions.iter().all(|a| !a.1.starts_with("in_progress")),
            "a step was left in progress\n{about}"
        );
        let node = mine[0].dir.join("node").display().to_string();
        let agents: Vec<_> = processes_mentioning(&node)
            .into_iter()
            .filter(|(_, cmd)| cmd.contains("-m inventiv_agent"))
            .collect();
        assert_eq!(agents.len(), 1, "one agent on the node: {agents:?}");
    }

    /// Terminates the instance and checks its VM and processes are gone.
    pub async fn terminate_and_check(&self, token: &str, id: Uuid) {
        let vm = self
            .vms()
            .into_iter()
            .filter(|v| v.instance_id == Some(id))
            .collect::<Vec<_>>();
        self.act(token, reqwest::Method::DELETE, &format!("/instances/{id}"))
            .await;
        self.wait_status(id, "terminated", Duration::from_secs(60))
            .await;
        let volumes = self.volumes(Some(id));
        assert!(volumes.is_empty(), "volumes left: {volumes:?}");
        for v in vm {
            assert!(!v.dir.exists(), "{} survived", v.dir.display());
            let left = processes_mentioning(&v.dir.display().to_string());
            assert!(left.is_empty(), "processes of the VM survived: {left:?}");
        }
    }

    /// Exactly one VM on disk per instance of `live`, and no other.
    pub fn assert_vms_of(&self, live: &[Uuid]) {
        let vms = self.vms();
        assert_eq!(vms.len(), live.len(), "orphan or missing VMs: {vms:?}");
        for id in live {
            assert!(vms.iter().any(|v| v.instance_id == Some(*id)), "{vms:?}");
        }
    }

    /// What a disturbed provisioning must end in: every instance of `ids`
    /// `ready` within `within` and passing [`Stack::assert_ready_once`], one VM
    /// each and no other; then each terminates cleanly and no VM is left.
    pub async fn converge_then_terminate(&self, token: &str, ids: &[Uuid], within: Duration) {
        for id in ids {
            self.wait_status(*id, "ready", within).await;
            self.assert_ready_once(*id).await;
        }
        self.assert_vms_of(ids);
        for id in ids {
            self.terminate_and_check(token, *id).await;
        }
        self.assert_vms_of(&[]);
    }

    /// Asks `id`'s model for a completion through the node's relay, as the
    /// proxy does, and checks tokens came back.
    pub async fn assert_answers(&self, id: Uuid) {
        let (http, base) = self.engine(id).await;
        let answer: Value = http
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hello" }] }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            answer["usage"]["completion_tokens"].as_i64().unwrap() > 0,
            "{answer}"
        );
    }

    /// Makes every lease look expired, as if `LEASE` had passed.
    pub async fn expire_leases(&self) {
        sqlx::query("UPDATE instances SET lease_until = now() - interval '1 second' WHERE lease_until IS NOT NULL")
            .execute(&self.db)
            .await
            .unwrap();
    }
}
